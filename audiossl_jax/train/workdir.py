"""One writer per workdir: a lock file held by process 0 for the length of a run.

``<workdir>/lock.json`` records the holder's host, pid and a heartbeat time that a
background thread refreshes every ``HEARTBEAT_S`` seconds. A second run on the same
workdir stops with ``WorkdirLockedError`` naming the holder. A lock left by a run that
was killed is stale and taken over with a warning: on the same host when its pid is
gone, on another host when its heartbeat is older than ``STALE_AFTER_S``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from etils import epath

LOCK_FILE = "lock.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 120.0


class WorkdirError(ValueError):
    """The workdir cannot be used as given."""


class WorkdirLockedError(WorkdirError):
    """Another live run holds the workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(holder: dict[str, Any], now: float) -> str | None:
    """Why a recorded lock holder is no longer running, or None when it may be alive."""
    if holder.get("host") == socket.gethostname():
        pid = int(holder.get("pid", -1))
        if pid == os.getpid():
            return None
        return None if _pid_alive(pid) else f"process {pid} on this host is gone"
    age = now - float(holder.get("heartbeat", 0.0))
    return f"its heartbeat is {age:.0f} s old" if age > STALE_AFTER_S else None


class WorkdirLock:
    """Context manager: takes ``<workdir>/lock.json`` and keeps its heartbeat until exit."""

    def __init__(self, workdir: str | epath.PathLike):
        self.path = epath.Path(workdir) / LOCK_FILE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()})

    def _create(self) -> bool:
        """Creates the lock file; False when it exists (atomic on local file systems)."""
        if str(self.path).startswith("gs://"):
            if self.path.exists():
                return False
            self.path.write_text(self._record())
            return True
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(self._record())
        return True

    def acquire(self) -> None:
        if not self._create():
            try:
                holder = json.loads(self.path.read_text())
            except (OSError, ValueError):
                holder = {}
            reason = stale_reason(holder, time.time()) if holder else "the lock file is unreadable"
            if reason is None:
                raise WorkdirLockedError(
                    f"workdir {self.path.parent} is in use by process {holder.get('pid')} on host "
                    f"{holder.get('host')!r} (lock {self.path}); wait for it to end, or use another --workdir. If "
                    "that process is certainly gone, delete the lock file."
                )
            logging.warning("workdir: taking over the stale lock %s (%s)", self.path, reason)
            self.path.write_text(self._record())
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.path.write_text(self._record())
            except OSError as e:
                logging.warning("workdir: cannot refresh the lock %s (%s)", self.path, e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

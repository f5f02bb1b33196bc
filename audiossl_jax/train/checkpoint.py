"""Orbax checkpoints of the full train state, with the run's config stored beside them.

Saves are atomic (Orbax writes into a temporary directory and renames it when complete)
and collective: on a multi-host job every process calls ``save``/``restore`` and writes
or reads its own shards. Once a save is complete, process 0 records a SHA-256 of every
file of that checkpoint (``<step>/checksums.json``).

``restore_latest`` first compares the checkpoint's stored config and tree shapes with
the current run: a changed model or recipe is a ``CheckpointMismatchError`` listing the
differing keys, never a reason to discard checkpoints; keys that are safe to change on
resume (``SAFE_ON_RESUME``) are allowed and logged. Only evidence of corruption (a
checksum mismatch, or an unreadable checkpoint without recorded checksums) moves that
one checkpoint to ``checkpoints_corrupt/`` and falls back to the previous one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

CHECKSUM_FILE = "checksums.json"

# Config keys (dotted; a trailing "." covers a whole group) that a resumed run may change:
# they leave the state's shapes and the data alone (the learning-rate schedule, clipping
# and compute dtype are what the advice after a NaN/Inf step asks to change).
SAFE_ON_RESUME: tuple[str, ...] = (
    "total_steps",
    "log_every_steps",
    "checkpoint.",
    "mesh.",
    "data.data_dir",
    "data.manual_dir",
    "data.prepare",
    "schedule.",
    "optimizer.grad_clip_norm",
    "compute_dtype",
)


class CheckpointMismatchError(ValueError):
    """The workdir's checkpoints were written by a different config or model; nothing is touched."""


def flatten_json(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten_json(v, f"{prefix}{k}."))
    return out


ABSENT = "<absent>"


def config_differences(stored: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (stored value, current value)} for every key whose value differs or is new/gone
    (``ABSENT`` on the side that lacks it)."""
    a, b = flatten_json(stored), flatten_json(current)
    return {
        k: (a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(set(a) | set(b)) if a.get(k, ABSENT) != b.get(k, ABSENT)
    }


def is_safe_on_resume(key: str, stored: Any, current: Any) -> bool:
    """Whether ``key`` may change from ``stored`` to ``current`` on resume: a SAFE_ON_RESUME key, or
    one that only one side has (a key added or removed by another code version; shape changes are
    caught by the tree comparison)."""
    if ABSENT in (stored, current):
        return True
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_ON_RESUME)


def _leaf_name(path: tuple) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{dotted leaf name: (shape, dtype)} of a state, abstract state or Orbax metadata tree."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_leaf_name(p): (tuple(leaf.shape), str(leaf.dtype)) for p, leaf in leaves if hasattr(leaf, "shape")}


def shape_differences(stored: Any, expected: Any) -> list[str]:
    """Lines naming every leaf whose shape/dtype differs, or that only one of the trees has."""
    a, b = _shapes(stored), _shapes(expected)
    lines = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            lines.append(f"{name}: in the checkpoint only")
        elif name not in a:
            lines.append(f"{name}: not in the checkpoint")
        elif a[name] != b[name]:
            lines.append(f"{name}: checkpoint {a[name][0]} {a[name][1]}, this run {b[name][0]} {b[name][1]}")
    return lines


def _files(directory: epath.Path) -> dict[str, epath.Path]:
    """Every file under ``directory`` by its relative path (works on gs:// too)."""
    out = {}
    for parent, _, names in directory.walk():
        for name in names:
            path = epath.Path(parent) / name
            out[str(path.relative_to(directory))] = path
    return out


def file_checksums(directory: epath.Path) -> dict[str, str]:
    """{relative path: sha256 hex} of every file of a checkpoint, except the checksum file."""
    sums = {}
    for rel, path in sorted(_files(directory).items()):
        if rel == CHECKSUM_FILE:
            continue
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        sums[rel] = h.hexdigest()
    return sums


class Checkpointer:
    """Periodic and final saves under ``<workdir>/checkpoints/<step>/{state,config}``.

    The state is restored onto the shardings of ``abstract_state`` (a tree of
    ``jax.ShapeDtypeStruct`` with ``sharding``), so a checkpoint written on one mesh
    restores onto another. ``workdir`` may be local or a ``gs://`` path.
    """

    def __init__(self, workdir: str | epath.PathLike, config: ml_collections.ConfigDict):
        c = config.checkpoint
        self.every_steps = int(c.every_steps)
        workdir = epath.Path(workdir)
        workdir = workdir if str(workdir).startswith("gs://") else workdir.absolute()
        self.directory = workdir / "checkpoints"
        self.corrupt_directory = workdir / "checkpoints_corrupt"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=c.max_to_keep,
            save_interval_steps=max(self.every_steps, 1),
            enable_async_checkpointing=c.asynchronous,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "config"))
        self.config_json = json.loads(config.to_json_best_effort())
        self._unsummed: list[int] = []

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restores the state saved at ``step`` (default: the latest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
        return restored["state"]

    def stored_config(self, step: int) -> dict:
        """The config (JSON) saved with the checkpoint at ``step``."""
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def checksum_problem(self, step: int) -> str | None:
        """Why the files of ``step`` differ from the checksums recorded at save; None when they match.

        A checkpoint without recorded checksums (killed between its save and the record)
        is accepted with a warning.
        """
        step_dir = self.directory / str(step)
        record = step_dir / CHECKSUM_FILE
        if not record.exists():
            logging.warning(
                "checkpoint: step %d in %s has no recorded checksums; it cannot be verified", step, self.directory
            )
            return None
        try:
            expected = json.loads(record.read_text())
        except ValueError as e:
            return f"{record} is unreadable ({e})"
        found = file_checksums(step_dir)
        changed = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        if changed:
            return f"{len(changed)} file(s) differ from the checksums recorded at save: {', '.join(changed[:5])}"
        return None

    def check_compatible(self, step: int, abstract_state: Any) -> None:
        """Raises CheckpointMismatchError when ``step`` was written by a different config or model.

        Differences in ``SAFE_ON_RESUME`` keys, and keys only one side has, are
        logged and allowed. Raises other
        errors (unreadable config or metadata) as they come: those are corruption.
        """
        differences = config_differences(self.stored_config(step), self.config_json)
        unsafe = {k: v for k, v in differences.items() if not is_safe_on_resume(k, *v)}
        if unsafe:
            listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(unsafe.items())[:12])
            more = f" (and {len(unsafe) - 12} more)" if len(unsafe) > 12 else ""
            raise CheckpointMismatchError(
                f"the checkpoint at step {step} in {self.directory} was written with a different config: "
                f"{listing}{more}. To resume, rerun with the stored values ({self.directory.parent / 'config.json'}); "
                "to start a new run with this config, pass a new --workdir. Nothing was changed."
            )
        if differences:
            logging.info(
                "checkpoint: resuming with changed keys (safe on resume): %s",
                "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differences.items()),
            )
        stored = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "state")
        lines = shape_differences(getattr(stored, "tree", stored), abstract_state)
        if lines:
            raise CheckpointMismatchError(
                f"the checkpoint at step {step} in {self.directory} holds a state of other shapes than this "
                f"code builds from the same config ({len(lines)} leaves): {'; '.join(lines[:8])}. Resume with "
                "the code version that wrote it, or pass a new --workdir to start a new run."
            )

    def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
        """The newest state that restores cleanly and its step; None when there is none.

        Raises CheckpointMismatchError (touching nothing) when the newest checkpoint
        that can be read was written by another config or model. A checkpoint whose
        checksums differ, or that has none and cannot be read, is logged as a warning,
        moved to ``<workdir>/checkpoints_corrupt/`` and the previous one is tried; one
        that matches its checksums but fails to restore is left in place (RuntimeError).
        """
        for step in sorted(self.manager.all_steps(), reverse=True):
            problem = self.checksum_problem(step)
            if problem is None:
                try:
                    self.check_compatible(step, abstract_state)
                    return self.restore(abstract_state, step), step
                except CheckpointMismatchError:
                    raise
                except Exception as e:  # noqa: BLE001 - an unverified unreadable checkpoint is corruption
                    if (self.directory / str(step) / CHECKSUM_FILE).exists():
                        raise RuntimeError(
                            f"the checkpoint at step {step} in {self.directory} matches the checksums recorded at "
                            f"save, so it is intact, but cannot be restored onto this run ({type(e).__name__}: "
                            f"{str(e)[:300]}); it is left in place."
                        ) from e
                    problem = f"{type(e).__name__}: {str(e)[:300]}"
            logging.warning(
                "checkpoint: step %d in %s cannot be restored (%s); moving it to %s and trying the previous one",
                step,
                self.directory,
                problem,
                self.corrupt_directory,
            )
            self._quarantine(step)
        return None

    def _quarantine(self, step: int) -> None:
        if jax.process_index() == 0:
            self.corrupt_directory.mkdir(parents=True, exist_ok=True)
            target = self.corrupt_directory / f"{step}-{int(time.time())}"
            (self.directory / str(step)).rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint_quarantine_{step}")
        self.manager.reload()

    def _record_checksums(self) -> None:
        """Writes checksums.json for every completed save that lacks one (process 0)."""
        self.manager.wait_until_finished()
        steps, self._unsummed = self._unsummed, []
        if jax.process_index() != 0:
            return
        for step in steps:
            step_dir = self.directory / str(step)
            if step_dir.exists():
                (step_dir / CHECKSUM_FILE).write_text(json.dumps(file_checksums(step_dir), indent=1))

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves when ``step`` is a multiple of ``every_steps`` or ``force``; returns whether it did."""
        if step in self.manager.all_steps():
            return False
        if self._unsummed:
            self._record_checksums()
        saved = self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self.config_json)),
            force=force,
        )
        if saved:
            self._unsummed.append(step)
            if jax.process_index() == 0:
                logging.info("checkpoint: saved step %d in %s", step, self.directory)
        return saved

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk and their checksums recorded."""
        self._record_checksums()

    def close(self) -> None:
        """Waits for pending asynchronous saves, records their checksums, then releases the manager."""
        self._record_checksums()
        self.manager.close()

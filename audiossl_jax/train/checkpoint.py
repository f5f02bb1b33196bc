"""Orbax checkpoints of the full train state, with the run's config stored beside them.

Saves are atomic (Orbax writes into a temporary directory and renames it when complete)
and collective: on a multi-host job every process calls ``save``/``restore`` and writes
or reads its own shards. ``restore_latest`` skips a latest checkpoint that cannot be
read (truncated or missing files), moves it aside and falls back to the previous one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils


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

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restores the state saved at ``step`` (default: the latest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
        return restored["state"]

    def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
        """The newest state that restores cleanly and its step; None when there is none.

        A checkpoint that fails to restore is logged as a warning, moved to
        ``<workdir>/checkpoints_corrupt/`` and the previous one is tried.
        """
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                return self.restore(abstract_state, step), step
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is skipped
                logging.warning(
                    "checkpoint: step %d in %s cannot be restored (%s: %s); moving it to %s and trying "
                    "the previous one", step, self.directory, type(e).__name__, str(e)[:300], self.corrupt_directory,
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

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves when ``step`` is a multiple of ``every_steps`` or ``force``; returns whether it did."""
        if step in self.manager.all_steps():
            return False
        saved = self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self.config_json)
            ),
            force=force,
        )
        if saved and jax.process_index() == 0:
            logging.info("checkpoint: saved step %d in %s", step, self.directory)
        return saved

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending asynchronous saves, then releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()

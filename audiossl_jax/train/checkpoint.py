"""Orbax checkpoints of the full train state, with the run's config stored beside them."""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
    """Periodic and final saves under ``<workdir>/checkpoints/<step>/{state,config}``.

    The state is restored onto the shardings of ``abstract_state`` (a tree of
    ``jax.ShapeDtypeStruct`` with ``sharding``), so a checkpoint written on one mesh
    restores onto another.
    """

    def __init__(self, workdir: str | pathlib.Path, config: ml_collections.ConfigDict):
        c = config.checkpoint
        self.every_steps = int(c.every_steps)
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
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

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves when ``step`` is a multiple of ``every_steps`` or ``force``; returns whether it did."""
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

    def close(self) -> None:
        """Waits for pending asynchronous saves, then releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()

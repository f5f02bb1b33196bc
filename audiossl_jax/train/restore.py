"""A run's weights from disk, without building its task, optimizer or train step.

Two layouts hold weights:

* a training workdir (``train.trainer.train``, ``save_untrained``): ``config.json`` and Orbax
  ``checkpoints/<step>/state`` (the whole train state: step, params, model_state, opt_state, rng);
* an export (``python -m audiossl_jax.export``): ``config.json``, ``export.json`` (format
  version, step, source workdir) and ``variables/`` (the model variables only).

``restore_variables`` reads the model variables of either, ``{"params": ..., "batch_stats": ...}``,
replicated over this machine's devices: the shapes come from the checkpoint's own metadata and
only the parameters and model state are read (a train state's optimizer state stays on disk).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from jax.sharding import NamedSharding, PartitionSpec

from audiossl_jax.train import sharding

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
STATE_ITEM = "state"
EXPORT_FILE = "export.json"
VARIABLES_DIR = "variables"
FORMAT_VERSION = 1


class ModelLoadError(ValueError):
    """A path that holds neither a training run nor an export (or an export of another format)."""


@dataclasses.dataclass
class Restored:
    """The stored run config, its model variables at ``step`` and where they came from (``source``:
    ``workdir`` and ``step``, plus ``export`` for an export)."""

    config: ml_collections.ConfigDict
    variables: dict[str, Any]
    step: int
    source: dict[str, Any]


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
    """The run config stored in ``<workdir>/config.json``."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --workdir must be the directory of a training run "
            "(it holds config.json and checkpoints/)"
        )
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def local_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of a run config on this machine's devices: all of them on the ``data`` axis,
    parameters replicated (no tensor parallelism or FSDP)."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.mesh.data, config.mesh.model, config.mesh.rules, config.mesh.fsdp = -1, 1, [], False
    return config


def is_export(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is a directory written by ``audiossl_jax.export``."""
    return (pathlib.Path(path) / EXPORT_FILE).is_file()


def read_export(path: str | pathlib.Path) -> dict[str, Any]:
    """The metadata of an export (``export.json``); ModelLoadError for another format version."""
    path = pathlib.Path(path)
    meta = json.loads((path / EXPORT_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{path / EXPORT_FILE}: format_version {meta.get('format_version')!r}, this code reads "
            f"version {FORMAT_VERSION}; export the run again with this version."
        )
    return meta


def checkpoint_steps(workdir: str | pathlib.Path) -> list[int]:
    """The complete checkpoint steps of a run (Orbax renames a step's directory when it is complete)."""
    directory = epath.Path(workdir) / CHECKPOINTS_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / STATE_ITEM).is_dir())


def latest_step(path: str | pathlib.Path) -> int:
    """The newest checkpoint step of a run (an export's own step); FileNotFoundError naming the
    directory when there is none."""
    if is_export(path):
        return int(read_export(path)["step"])
    steps = checkpoint_steps(path)
    if not steps:
        raise FileNotFoundError(
            f"no checkpoint under {pathlib.Path(path) / CHECKPOINTS_DIR}: train first, or pass another --workdir"
        )
    return steps[-1]


def _read(directory: epath.Path, select: Any) -> dict[str, Any]:
    """The subtrees ``select(metadata) -> {key: metadata subtree}`` of the Orbax tree in ``directory``,
    read replicated over every device."""
    metadata = ocp.StandardCheckpointHandler().metadata(directory)
    wanted = select(getattr(metadata, "tree", metadata))
    replicated = NamedSharding(sharding.make_mesh(), PartitionSpec())
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=replicated), wanted)
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=replicated), target)
    with ocp.PyTreeCheckpointer() as reader:
        return reader.restore(
            directory, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
        )


def restore_variables(path: str | pathlib.Path, step: int | None = None) -> Restored:
    """The model variables of the run in ``path`` at ``step`` (default: the latest), or of an export
    (which holds its run's one step). No task, optimizer or jitted function is built."""
    given, path = str(path), pathlib.Path(path).absolute()
    meta = read_export(path) if is_export(path) else None
    config = load_config(path)
    if meta is not None:
        held = meta.get("step")
        if step is not None and step != held:
            raise ValueError(f"{path} is an export of step {held} only, not step {step}; leave the step unset")
        variables = _read(epath.Path(path) / VARIABLES_DIR, dict)
        source = {"export": given, "step": held, "workdir": meta.get("workdir")}
        step = held
    else:
        step = latest_step(path) if step is None else int(step)
        directory = epath.Path(path) / CHECKPOINTS_DIR / str(step) / STATE_ITEM
        if not directory.is_dir():
            raise FileNotFoundError(
                f"no checkpoint of step {step} under {path / CHECKPOINTS_DIR} (it holds steps {checkpoint_steps(path)})"
            )
        state = _read(directory, lambda tree: {k: tree[k] for k in ("params", "model_state") if k in tree and tree[k]})
        variables = {"params": state["params"], **state.get("model_state", {})}
        source = {"workdir": given, "step": step}
    logging.info("restored %s (task %r) at step %s from %s", config.model.name, config.task.name, step, given)
    return Restored(config, dict(variables), step, source)

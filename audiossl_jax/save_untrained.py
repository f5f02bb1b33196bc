"""The untrained baseline: ``python -m audiossl_jax.save_untrained --config=... --workdir=DIR``.

Writes the randomly initialised train state of the configured task (``config.seed``)
as a step-0 checkpoint in ``DIR/checkpoints/0`` and the config as ``DIR/config.json``,
exactly as the trainer lays out a run, so evaluation loads it like any other
checkpoint. Refuses a workdir that already holds checkpoints.
"""

from __future__ import annotations

import pathlib

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import jax  # noqa: E402
import ml_collections  # noqa: E402
from absl import app, flags  # noqa: E402

from audiossl_jax import config_lib  # noqa: E402
from audiossl_jax.train import checkpoint, restore, sharding, trainer  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """--config and --workdir; defined only when run as a program, so importing never clashes."""
    cli.define_config("Experiment config file, e.g. configs/pretrain_triplet.py.")
    cli.define_workdir("Directory for the step-0 checkpoint and config.json.")


def save_untrained(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> pathlib.Path:
    """Saves the initial state as step 0; returns the checkpoint directory."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.Checkpointer(workdir, config)
    try:
        existing = ckpt.latest_step()
        if existing is not None:
            raise FileExistsError(
                f"{ckpt.directory} already holds a checkpoint (step {existing}); choose an empty --workdir."
            )
        mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
        state = trainer.setup(config, mesh).init_fn()
        if jax.process_index() == 0:
            (workdir / restore.CONFIG_FILE).write_text(config.to_json_best_effort(indent=2))
        ckpt.save(0, state, force=True)
    finally:
        ckpt.close()
    return ckpt.directory / "0"


def main(argv: list[str]) -> None:
    cli.start(argv)
    config = FLAGS.config
    with cli.user_errors(ValueError, FileExistsError):
        config_lib.validate(config)
        path = save_untrained(config, FLAGS.workdir)
    print(f"untrained {config.model.name} (seed {config.seed}) saved in {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)

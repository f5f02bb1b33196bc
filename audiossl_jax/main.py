"""Entry point: ``python -m audiossl_jax.main --config=configs/<exp>.py[:variant] --workdir=DIR``.

Overrides: ``--config.key=value`` (an unknown key or a value of the wrong type is
rejected by ml_collections with the key's name). Running the same command again on the
same workdir resumes from the last checkpoint. Only this package's INFO lines are
shown; pass ``--v=1`` to see those of Orbax, TFDS and clu as well.

One command for every job, chosen by ``config.mode``: ``pretrain`` (``train.trainer.train``),
``finetune`` (configs/eval_finetune_*.py, ``evaluation.finetune.run``) and ``grid``.

Grids (``mode='grid'``, configs/grid_*.py): every point of the grid runs as its own
resumable run in ``<workdir>/<point>``; the tables and figure go to ``<workdir>``
(``evaluation/grids.py``).

Multi-host: run the same command on every host. ``--distributed=auto`` joins the hosts
when a coordinator is given (``--coordinator_address`` with ``--num_processes`` and
``--process_id``, or $JAX_COORDINATOR_ADDRESS) or SLURM runs several tasks; ``on``
detects a Cloud TPU slice, SLURM, Open MPI or Kubernetes from the environment. Only
process 0 logs progress. SIGTERM and Ctrl-C save a checkpoint and exit with status 0.

User errors (a bad config, mesh, batch size or schedule, an empty or busy workdir, a
workdir whose checkpoints come from another config, a dataset that cannot be used)
exit with status 1 and a one-line message, without a traceback.

A finished pre-training run ends by printing the next commands (``next_commands``):
embed both splits with the new encoder and fit a linear probe on them.
"""

from __future__ import annotations

import pathlib
import shlex
import sys
from collections.abc import Callable
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import jax  # noqa: E402
import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from audiossl_jax import config_lib  # noqa: E402
from audiossl_jax.data.registry import DatasetError  # noqa: E402
from audiossl_jax.evaluation import finetune, grids  # noqa: E402
from audiossl_jax.train import checkpoint, optim, sharding, trainer  # noqa: E402
from audiossl_jax.train import workdir as workdir_lib  # noqa: E402

FLAGS = flags.FLAGS
cli.define_config("Experiment config file, e.g. configs/pretrain_cfS.py:demo.")
cli.define_workdir("Directory for checkpoints, summaries and the stored config.")
cli.define_distributed()


def next_commands(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """Shell commands that embed the training and evaluation splits of ``config.data`` with the
    encoder in ``workdir`` (``evaluation.embed``) and fit a linear probe on them (``evaluation.linear``)."""
    d = config.data
    data = [f"--data={d.name}", f"--crop_seconds={float(d.crop_seconds):g}"]
    if d.get("path", None):
        data += [f"--data_path={d.path}", f"--label_key={d.label_key}"]
    if d.get("data_dir", None):
        data.append(f"--data_dir={d.data_dir}")
    out = {split: f"{workdir.rstrip('/')}/embeddings/{split}.npz" for split in (d.train_split, d.eval_split)}
    embed = [
        shlex.join(
            [
                "python",
                "-m",
                "audiossl_jax.evaluation.embed",
                f"--workdir={workdir}",
                *data,
                f"--split={split}",
                f"--out={path}",
            ]
        )
        for split, path in out.items()
    ]
    probe = shlex.join(
        [
            "python",
            "-m",
            "audiossl_jax.evaluation.linear",
            f"--train={out[d.train_split]}",
            f"--test={out[d.eval_split]}",
        ]
    )
    return [*embed, probe]


def pretrain(config: ml_collections.ConfigDict, workdir: str) -> None:
    """``mode='pretrain'``: trains, then prints the commands that evaluate the new encoder."""
    trainer.train(config, workdir)
    if jax.process_index() == 0:
        print(
            "\nNext: embed both splits with this encoder and fit a linear probe (prints its test "
            "accuracy):\n" + "\n".join(f"  {c}" for c in next_commands(config, workdir)),
            flush=True,
        )


def grid(config: ml_collections.ConfigDict, workdir: str) -> None:
    """``mode='grid'``: runs every point, then prints the table."""
    grids.run(config, workdir)
    print((pathlib.Path(workdir) / grids.TABLE_MD).read_text())


# config.mode -> (the config's validation, the job). A grid validates every point's run config.
JOBS: dict[str, tuple[Callable[[ml_collections.ConfigDict], None], Callable[[ml_collections.ConfigDict, str], Any]]] = {
    "pretrain": (config_lib.validate, pretrain),
    "finetune": (config_lib.validate, finetune.run),
    "grid": (grids.validate, grid),
}


def main(argv: list[str]) -> None:
    cli.start(argv)
    config = FLAGS.config
    if not (FLAGS.workdir or "").strip():
        sys.exit("error: --workdir is empty; pass --workdir=DIR (a new directory for a new run, the old one to resume)")
    mode = config.get("mode")
    with cli.user_errors(ValueError, prefix="invalid config: "):
        config_lib.require(mode in JOBS, "mode", mode, f"use one of {sorted(JOBS)}.")
        validate, job = JOBS[mode]
        validate(config)
    with cli.user_errors(ValueError):
        sharding.initialize_distributed(
            FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
        )
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)
    if mode != "grid":
        with cli.user_errors(ValueError, prefix="invalid config: "):
            sharding.check_batch_size(config.batch_size, sharding.make_mesh(config.mesh.data, config.mesh.model))
            optim.make_optimizer(config)
    # A grid's points and a fine-tuning run (its pretrained_workdir, its dataset's classes) fail on
    # data or settings only once they run: their errors are the user's too.
    late_checks = mode != "pretrain"
    user_errors = (
        DatasetError,
        trainer.NonFiniteLossError,
        workdir_lib.WorkdirError,
        checkpoint.CheckpointMismatchError,
    ) + ((ValueError, FileNotFoundError) if late_checks else ())
    with cli.user_errors(*user_errors):
        try:
            job(config, FLAGS.workdir)
        except trainer.Preempted as e:
            logging.warning("%s", e)
            print(str(e), file=sys.stderr, flush=True)


if __name__ == "__main__":
    app.run(main)

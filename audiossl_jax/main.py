"""Entry point: ``python -m audiossl_jax.main --config=configs/<exp>.py[:variant] --workdir=DIR``.

Overrides: ``--config.key=value`` (an unknown key or a value of the wrong type is
rejected by ml_collections with the key's name). Running the same command again on the
same workdir resumes from the last checkpoint. Only this package's INFO lines are
shown; pass ``--v=1`` to see those of Orbax, TFDS and clu as well.
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from audiossl_jax import config_lib  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/pretrain_cfS.py:demo.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries and the stored config.")
flags.mark_flags_as_required(["config", "workdir"])


PACKAGE_DIR = str(pathlib.Path(__file__).resolve().parent)


class OwnInfoFilter(std_logging.Filter):
    """Passes this package's INFO lines and everyone's warnings; Orbax and TFDS chatter stays out."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or record.pathname.startswith(PACKAGE_DIR)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if logging.get_verbosity() <= logging.INFO:
        logging.set_verbosity(logging.INFO)
        logging.get_absl_handler().addFilter(OwnInfoFilter())
    config = FLAGS.config
    try:
        config_lib.validate(config)
    except ValueError as e:
        sys.exit(f"error: invalid config: {e}")

    from audiossl_jax.data.registry import DatasetError
    from audiossl_jax.train import trainer

    try:
        trainer.train(config, FLAGS.workdir)
    except (DatasetError, trainer.NonFiniteLossError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)

"""Console logging of the command-line entry points: this package's INFO, everyone's warnings."""

from __future__ import annotations

import logging as std_logging
import pathlib

from absl import logging

PACKAGE_DIR = str(pathlib.Path(__file__).resolve().parent)


class OwnInfoFilter(std_logging.Filter):
    """Passes this package's INFO lines and everyone's warnings; Orbax and TFDS chatter stays out."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or record.pathname.startswith(PACKAGE_DIR)


def show_own_info() -> None:
    """INFO for this package only, unless ``--v=1`` (or more) asks for every library's lines."""
    if logging.get_verbosity() <= logging.INFO:
        logging.set_verbosity(logging.INFO)
        logging.get_absl_handler().addFilter(OwnInfoFilter())

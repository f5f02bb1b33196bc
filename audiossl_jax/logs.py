"""Console output of every command-line entry point: one filter, no library banners, no raw escape codes.

Every ``python -m audiossl_jax...`` command imports this module (through ``cli``) before
anything that loads TensorFlow, then calls ``show_own_info()`` first thing in its ``main``
(``cli.start``). Importing it sets (unless already set in the environment):

* ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ INFO and WARNING lines stay out;
* ``TF_ENABLE_ONEDNN_OPTS=0``: no oneDNN banner. TensorFlow only reads and decodes
  audio here (tf.data); the model runs in JAX, whose numerics this does not touch;
* ``TQDM_DISABLE=1`` when stderr is not a terminal: the progress bars of TFDS (tqdm)
  redraw with cursor-up escape codes (``ESC [A``) that a log file or CI capture shows
  raw, so they are drawn only on a terminal.
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import sys

from absl import logging

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def quiet_environment(interactive: bool) -> dict[str, str]:
    """The variables to set before TensorFlow loads; tqdm bars only when ``interactive`` (a terminal)."""
    return {**QUIET_ENVIRONMENT, **({} if interactive else {"TQDM_DISABLE": "1"})}


for _key, _value in quiet_environment(sys.stderr.isatty()).items():
    os.environ.setdefault(_key, _value)

PACKAGE_DIR = str(pathlib.Path(__file__).resolve().parent)


class OwnInfoFilter(std_logging.Filter):
    """Passes this package's INFO lines and other libraries' warnings, each warning once per source line.

    Orbax, TFDS, clu and JAX INFO chatter (about 150 lines per fine-tuning run) stays out;
    a library warning logged again from the same place (TFDS warns per split) is dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.warned: set[tuple[str, int]] = set()

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.pathname.startswith(PACKAGE_DIR):
            return True
        if record.levelno < std_logging.WARNING:
            return False
        place = (record.pathname, record.lineno)
        if place in self.warned and record.levelno < std_logging.ERROR:
            return False
        self.warned.add(place)
        return True


def show_own_info() -> None:
    """INFO for this package only, unless ``--v=1`` (or more) asks for every library's lines."""
    if logging.get_verbosity() <= logging.INFO:
        logging.set_verbosity(logging.INFO)
        handler = logging.get_absl_handler()
        if not any(isinstance(f, OwnInfoFilter) for f in handler.filters):
            handler.addFilter(OwnInfoFilter())

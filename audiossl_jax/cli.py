"""The command-line surface shared by every ``python -m audiossl_jax...`` command.

A flag that several commands take is defined here once; each command passes the help
text that says what the flag means for it. The ``main`` of every command starts with
``start(argv)`` (no positional arguments; this package's INFO lines only, ``logs``) and
wraps the work a user's input can make fail in ``user_errors(...)``: those errors end the
command with status 1 and one line ``error: <message>``, without a traceback.

Commands define their flags when they run (under ``if __name__ == "__main__"``), so
importing one never clashes with another's; ``audiossl_jax.main`` defines its flags on
import, since tests drive it in-process through ``main.FLAGS``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence

from audiossl_jax import logs  # first: quiets TensorFlow before it loads  # isort: skip

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

# The flags defined below belong to the command that asks for them (its --helpshort lists them).
flags.disclaim_key_flags()

RUN_DIR_HELP = "Training run directory (config.json + checkpoints/)."
STEP_HELP = "Checkpoint step; default: the latest."


def define_config(help_text: str) -> None:
    """``--config``: a config file ``path.py[:variant]``, overridable by ``--config.key=value``; required."""
    config_flags.DEFINE_config_file("config", None, help_text, lock_config=True)
    flags.mark_flag_as_required("config")


def define_workdir(help_text: str) -> None:
    """``--workdir``: the run directory the command writes or reads; required."""
    flags.DEFINE_string("workdir", None, help_text)
    flags.mark_flag_as_required("workdir")


def define_out(help_text: str) -> None:
    """``--out``: the file or directory the command writes; required."""
    flags.DEFINE_string("out", None, help_text)
    flags.mark_flag_as_required("out")


def define_step(help_text: str = STEP_HELP) -> None:
    """``--step``: which checkpoint of a run to load (None: the latest)."""
    flags.DEFINE_integer("step", None, help_text)


def define_batch_windows(help_text: str) -> None:
    """``--batch_windows``: windows embedded at once (``inference.embed_sounds``), 16 by default."""
    flags.DEFINE_integer("batch_windows", 16, help_text)


def define_distributed() -> None:
    """``--distributed`` and the coordinator flags ``sharding.initialize_distributed`` takes."""
    flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"], "Join a multi-host job (see module docstring).")
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for jax.distributed.")
    flags.DEFINE_integer("num_processes", None, "Number of processes in the job (with --coordinator_address).")
    flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")


def start(argv: Sequence[str]) -> None:
    """A command's first line: positional arguments are a usage error; then ``logs.show_own_info``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logs.show_own_info()


@contextlib.contextmanager
def user_errors(*errors: type[BaseException], prefix: str = "", rewrite: Callable[[str], str] = str) -> Iterator[None]:
    """Ends the command on any of ``errors`` raised inside: exit status 1 and the one line
    ``error: <prefix><rewrite(message)>`` on stderr, no traceback."""
    try:
        yield
    except errors as e:
        sys.exit(f"error: {prefix}{rewrite(str(e))}")

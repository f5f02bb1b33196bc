"""Test set-up: 8 fake CPU devices for sharding tests, quiet TensorFlow.

The flags must be set before jax is imported anywhere, which is why they live here.
"""

import atexit
import fcntl
import os
import pickle
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Each test process (every pytest-xdist worker imports this file itself) prepares the
# built-in datasets in a folder of its own: nothing is written to ~/tensorflow_datasets
# and two workers never race to prepare the same dataset. Subprocesses started by a
# test inherit its folder.
os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="audiossl-tfds-")
atexit.register(shutil.rmtree, os.environ["TFDS_DATA_DIR"], ignore_errors=True)
# One persistent XLA compilation cache for the whole run: the controller creates it before
# the xdist workers start, and they and every subprocess a test starts inherit it, so the
# many identical smoke models compile once. It changes which process compiles, never what
# is compiled.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="audiossl-xla-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import pathlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[pathlib.Path], Any]) -> Any:
    """``build(directory)``'s result, built once per test run even with pytest-xdist.

    Each xdist worker runs a module or session fixture itself, so an expensive one (a smoke
    training run) would be built once per worker that runs a test needing it. Here the first
    worker to take a lock builds into the run's shared temporary folder and pickles the result;
    the others wait for it and read it back. Without xdist it simply builds. The folder is read
    by every worker: tests must copy it before changing anything in it.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent / f"built-once-{name}"
    root.mkdir(exist_ok=True)
    result = root / "result.pickle"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            (root / "data").mkdir(exist_ok=True)
            value = build(root / "data")
            result.write_bytes(pickle.dumps(value))
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data; skips the test with a clear message when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real audio not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def conformer_smoke_run(tmp_path_factory) -> pathlib.Path:
    """An untrained (step-0) workdir of the smoke conformer with two blocks (so per-layer outputs differ)."""
    from audiossl_jax import config_lib
    from audiossl_jax.save_untrained import save_untrained

    workdir = tmp_path_factory.mktemp("conformer_smoke")
    c = config_lib.load_config_file("pretrain_cfS.py:smoke")
    c.model.num_blocks = 2
    save_untrained(c, workdir)
    return workdir


@pytest.fixture(scope="session")
def cnn_smoke_run(tmp_path_factory) -> pathlib.Path:
    """An untrained (step-0) workdir of the smoke TemporalGap CNN (Tagliasacchi et al. encoder)."""
    from audiossl_jax import config_lib
    from audiossl_jax.save_untrained import save_untrained

    workdir = tmp_path_factory.mktemp("cnn_smoke")
    save_untrained(config_lib.load_config_file("pretrain_temporal_gap.py:smoke"), workdir)
    return workdir

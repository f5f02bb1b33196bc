"""Test set-up: 8 fake CPU devices for sharding tests, quiet TensorFlow.

The flags must be set before jax is imported anywhere, which is why they live here.
"""

import atexit
import os
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

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


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

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

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data; skips the test with a clear message when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real audio not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA

"""Test set-up: 8 fake CPU devices for sharding tests, quiet TensorFlow.

The flags must be set before jax is imported anywhere, which is why they live here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data; skips the test with a clear message when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real audio not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA

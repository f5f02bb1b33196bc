"""Preemption: SIGTERM saves and exits 0, SIGKILL + rerun ends bitwise equal, bad checkpoints are skipped.

Run as a script (``python tests/test_preemption.py WORKDIR TOTAL EVERY PAUSE_AT``), this
file trains the smoke model on a step-deterministic source and, before step PAUSE_AT,
creates WORKDIR/ready and waits for WORKDIR/go, so that a test can signal it there.
"""

import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from audiossl_jax.train import trainer
from test_trainer import smoke_config, synthetic_batches

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    TF_CPP_MIN_LOG_LEVEL="2",
)
TOTAL, EVERY = 6, 2


def config_for(total, every):
    config = smoke_config(total_steps=total)
    config.checkpoint.every_steps = every
    return config


def pausing_batches(config, start, workdir, pause_at):
    """synthetic_batches, but before the batch of step ``pause_at`` waits for workdir/go."""
    for step, batch in enumerate(synthetic_batches(config, start), start=start + 1):
        if step == pause_at:
            (workdir / "ready").touch()
            deadline = time.time() + 300
            while not (workdir / "go").exists() and time.time() < deadline:
                time.sleep(0.05)
        yield batch


def leaves(state):
    return jax.tree.leaves(jax.device_get(state))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = config_for(TOTAL, EVERY)
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return leaves(trainer.train(config, workdir, data_iterator_fn=lambda s: synthetic_batches(config, s)))


def wait_for(predicate, proc, timeout=240.0):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended early with status {proc.returncode}"
        assert time.time() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def checkpoint_steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_sigkill_then_rerun_ends_bitwise_equal(tmp_path, uninterrupted):
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, __file__, str(workdir), str(TOTAL), str(EVERY), "5"],
        env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (workdir / "ready").exists(), proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    assert checkpoint_steps(workdir) == [2, 4]
    config = config_for(TOTAL, EVERY)
    starts = []

    def recording(start):
        starts.append(start)
        return synthetic_batches(config, start)

    resumed = trainer.train(config, workdir, data_iterator_fn=recording)
    assert starts == [4]
    for a, b in zip(leaves(resumed), uninterrupted):
        np.testing.assert_array_equal(a, b)

    # The latest checkpoint (6) truncated, a partial one (8) beside it: both are
    # skipped with a warning and the run resumes from step 4, ending bitwise equal.
    for f in (workdir / "checkpoints" / "6").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    partial = workdir / "checkpoints" / "8"
    shutil.copytree(workdir / "checkpoints" / "4", partial)
    for f in sorted((partial / "state").rglob("*"), reverse=True):
        if f.is_file():
            f.unlink()
    starts.clear()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        resumed = trainer.train(config, workdir, data_iterator_fn=recording)
    finally:
        logging.getLogger().removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any("step 8" in w and "cannot be restored" in w for w in warnings), warnings
    assert any("step 6" in w and "cannot be restored" in w for w in warnings), warnings
    assert starts == [4]
    assert sorted(p.name.split("-")[0] for p in (workdir / "checkpoints_corrupt").iterdir()) == ["6", "8"]
    for a, b in zip(leaves(resumed), uninterrupted):
        np.testing.assert_array_equal(a, b)


def test_sigterm_saves_exits_zero_and_rerun_resumes(tmp_path):
    """End to end through ``python -m audiossl_jax.main`` on the built-in tiny dataset."""
    workdir = tmp_path / "run"
    args = [
        sys.executable, "-m", "audiossl_jax.main", "--config=configs/pretrain_cfS.py:smoke",
        f"--workdir={workdir}", f"--config.data.data_dir={tmp_path / 'tfds'}",
        "--config.checkpoint.every_steps=1000",
    ]
    proc = subprocess.Popen(
        args + ["--config.total_steps=1000"], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(re.search(r"step [3-9]/1000", line) for line in lines), proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, "".join(lines[-30:])
    finally:
        proc.kill()
    reader.join(timeout=10)
    output = "".join(lines)
    match = re.search(r"preempted \(SIGTERM\): saved a checkpoint at step (\d+)", output)
    assert match, output[-3000:]
    saved = int(match.group(1))
    assert saved >= 3 and checkpoint_steps(workdir) == [saved]

    rerun = subprocess.run(
        args + [f"--config.total_steps={saved + 1}"], env=ENV, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from the checkpoint at step {saved}" in rerun.stderr, rerun.stderr[-3000:]
    assert checkpoint_steps(workdir) == [saved, saved + 1]


if __name__ == "__main__":
    workdir_arg, total_arg, every_arg, pause_arg = sys.argv[1:]
    run_dir = pathlib.Path(workdir_arg)
    cfg = config_for(int(total_arg), int(every_arg))
    trainer.train(cfg, run_dir, data_iterator_fn=lambda s: pausing_batches(cfg, s, run_dir, int(pause_arg)))

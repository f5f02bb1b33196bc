"""Preemption through ``python -m audiossl_jax.main`` on the built-in tiny dataset.

SIGKILL mid-way + the same command again ends bitwise equal to an uninterrupted run (the
input pipeline resumes at position = step); an unreadable latest checkpoint is skipped
with a warning; SIGTERM saves, exits 0 and the rerun resumes.
"""

from __future__ import annotations

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
from typing import Any

import jax
import numpy as np
import pytest

from audiossl_jax import config_lib
from audiossl_jax.data import registry
from audiossl_jax.train import checkpoint, restore, sharding, trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    TF_CPP_MIN_LOG_LEVEL="2",
)
TOTAL, EVERY = 12, 2


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A tfds data_dir with ``synthetic_audio/tiny`` prepared once for every run of this module."""
    path = tmp_path_factory.mktemp("tfds")
    data = config_lib.load_config_file("pretrain_cfS.py:smoke").data
    data.data_dir = str(path)
    registry.load_source(data, data.train_split)
    return path


def command(workdir: pathlib.Path, data_dir: pathlib.Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "audiossl_jax.main",
        "--config=configs/pretrain_cfS.py:smoke",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        *overrides,
    ]


class Run:
    """A command in a subprocess whose merged stdout/stderr lines are collected as they come."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen(
            args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, pattern: str, timeout: float = 240.0) -> None:
        """Blocks until a line matches ``pattern``; fails if the process ends first."""
        deadline = time.time() + timeout
        while not any(re.search(pattern, line) for line in list(self.lines)):
            assert self.proc.poll() is None, f"the run ended with status {self.proc.returncode}:\n{self.tail()}"
            assert time.time() < deadline, f"timed out waiting for {pattern!r}:\n{self.tail()}"
            time.sleep(0.01)

    def finish(self, timeout: float = 300.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
        self._reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "".join(self.lines)

    def tail(self) -> str:
        return "".join(self.lines[-30:])


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def saved_state(workdir: pathlib.Path, step: int) -> list[Any]:
    """Every leaf (step, params, optimizer state, model state, key) saved at ``step``, on the host."""
    config = restore.load_config(workdir)
    abstract = trainer.setup(config, sharding.make_mesh(config.mesh.data, config.mesh.model)).abstract_state
    ckpt = checkpoint.Checkpointer(workdir, config)
    try:
        return jax.tree.leaves(jax.device_get(ckpt.restore(abstract, step)))
    finally:
        ckpt.close()


def assert_bitwise_equal(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b) and len(a) > 5
    for x, y in zip(a, b):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y, strict=True)


def kill_after_first_checkpoint(workdir: pathlib.Path, data_dir: pathlib.Path, overrides: tuple[str, ...]) -> list[int]:
    """Runs the command and SIGKILLs it once step 2 is saved; returns the checkpoint steps left."""
    killed = Run(command(workdir, data_dir, *overrides))
    try:
        killed.wait_for(r"checkpoint: saved step 2 ")
        killed.proc.send_signal(signal.SIGKILL)
    finally:
        code = killed.finish(timeout=30)
    assert code == -signal.SIGKILL, f"the run ended with status {code} before the kill:\n{killed.tail()}"
    kept = checkpoint_steps(workdir)
    assert kept and 2 <= kept[-1] < TOTAL, f"checkpoints after the kill: {kept}"
    return kept


def test_sigkill_then_rerun_ends_bitwise_equal(
    tmp_path: pathlib.Path, data_dir: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = (
        f"--config.total_steps={TOTAL}",
        f"--config.checkpoint.every_steps={EVERY}",
        f"--config.checkpoint.max_to_keep={TOTAL}",
    )
    reference_dir, workdir = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = Run(command(reference_dir, data_dir, *overrides))
    try:
        kept = kill_after_first_checkpoint(workdir, data_dir, overrides)
        rerun = subprocess.run(
            command(workdir, data_dir, *overrides), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
    finally:
        reference_code = reference.finish()
    assert reference_code == 0, reference.tail()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from the checkpoint at step {kept[-1]} " in rerun.stderr, rerun.stderr[-3000:]
    assert f"training steps {kept[-1]} -> {TOTAL}" in rerun.stderr, rerun.stderr[-3000:]
    assert checkpoint_steps(reference_dir)[-1] == TOTAL
    expected = saved_state(reference_dir, TOTAL)
    assert_bitwise_equal(saved_state(workdir, TOTAL), expected)

    # The latest checkpoint truncated and a partial one (no state files) beside it: both
    # are skipped with a warning, resume falls back to TOTAL - EVERY, and the run again
    # ends bitwise equal (in process, on the same real input pipeline).
    for f in (workdir / "checkpoints" / str(TOTAL)).rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    partial = workdir / "checkpoints" / str(TOTAL + EVERY)
    shutil.copytree(workdir / "checkpoints" / str(TOTAL - EVERY), partial)
    for f in sorted((partial / "state").rglob("*"), reverse=True):
        if f.is_file():
            f.unlink()
    with caplog.at_level(logging.INFO):
        trainer.train(restore.load_config(workdir), workdir)
    messages = [r.getMessage() for r in caplog.records]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for step in (TOTAL + EVERY, TOTAL):
        assert any(f"step {step} " in w and "cannot be restored" in w for w in warnings), warnings
    assert any(f"resuming from the checkpoint at step {TOTAL - EVERY} " in m for m in messages), messages
    corrupt = sorted(int(p.name.split("-")[0]) for p in (workdir / "checkpoints_corrupt").iterdir())
    assert corrupt == [TOTAL, TOTAL + EVERY]
    assert_bitwise_equal(saved_state(workdir, TOTAL), expected)


def test_sigterm_saves_exits_zero_and_rerun_resumes(tmp_path: pathlib.Path, data_dir: pathlib.Path) -> None:
    workdir = tmp_path / "run"
    args = command(workdir, data_dir, "--config.checkpoint.every_steps=1000")
    run = Run(args + ["--config.total_steps=1000"])
    try:
        run.wait_for(r"step [3-9]/1000")
        run.proc.send_signal(signal.SIGTERM)
    finally:
        code = run.finish(timeout=120)
    assert code == 0, run.tail()
    output = run.output()
    match = re.search(r"preempted \(SIGTERM\): saved a checkpoint at step (\d+)", output)
    assert match, output[-3000:]
    saved = int(match.group(1))
    assert saved >= 3 and checkpoint_steps(workdir) == [saved]

    rerun = subprocess.run(
        args + [f"--config.total_steps={saved + 1}"], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from the checkpoint at step {saved}" in rerun.stderr, rerun.stderr[-3000:]
    assert checkpoint_steps(workdir) == [saved, saved + 1]

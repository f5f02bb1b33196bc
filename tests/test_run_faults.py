"""Faults a run must survive or refuse clearly: a changed config on resume, a corrupted
checkpoint, a second writer, deleted checkpoints, Ctrl-C and an update that overflows.

One 4-step smoke run (checkpoints at 2 and 4) is trained once per module; each test
works on a copy of it.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import built_once
from etils import epath
from test_preemption import assert_bitwise_equal, saved_state
from test_trainer import smoke_config, synthetic_batches

from audiossl_jax.train import checkpoint, sharding, trainer, workdir

TOTAL = 4


def _config(**overrides):
    return smoke_config(**{"total_steps": TOTAL, "checkpoint.every_steps": 2, **overrides})


def _train(config, path: pathlib.Path, **kwargs):
    return trainer.train(config, path, data_iterator_fn=lambda s: synthetic_batches(config, s, **kwargs))


def _steps(path: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (path / "checkpoints").iterdir() if p.name.isdigit())


def _base_run(directory: pathlib.Path) -> pathlib.Path:
    path = directory / "run"
    _train(_config(), path)
    assert _steps(path) == [2, 4]
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 4-step smoke run, once for the test run; each test changes a copy (``run_copy``)."""
    return built_once(tmp_path_factory, "faults_base", _base_run)


@pytest.fixture()
def run_copy(base_run: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "run"
    shutil.copytree(base_run, path)
    return path


def test_changed_model_is_refused_and_nothing_is_moved(run_copy, caplog) -> None:
    stored = (run_copy / "config.json").read_text()
    with pytest.raises(
        checkpoint.CheckpointMismatchError,
        match=r"model.model_dim: 32 -> 64.*rerun with the stored values.*new --workdir",
    ):
        _train(_config(**{"model.model_dim": 64}), run_copy)
    assert _steps(run_copy) == [2, 4] and not (run_copy / "checkpoints_corrupt").exists()
    assert (run_copy / "config.json").read_text() == stored

    # Same config, other shapes (as another code version would build): named leaf by leaf.
    other = trainer.setup(_config(**{"model.model_dim": 64}), sharding.make_mesh(-1, 1)).abstract_state
    ckpt = checkpoint.Checkpointer(run_copy, _config())
    try:
        with pytest.raises(
            checkpoint.CheckpointMismatchError,
            match=r"other shapes.*\(\d+ leaves\).*mhsa.out.bias: checkpoint \(32,\) float32, this run \(64,\)",
        ):
            ckpt.check_compatible(4, other)
    finally:
        ckpt.close()

    # total_steps and the learning rate (what the NaN advice asks to lower) are safe to
    # change: logged, and the run continues from step 4.
    longer = _config(total_steps=TOTAL + 2, **{"schedule.peak_learning_rate": 1e-4})
    with caplog.at_level(logging.INFO):
        state = _train(longer, run_copy)
    assert int(state.step) == TOTAL + 2
    assert any(
        "safe on resume" in r.getMessage()
        and "schedule.peak_learning_rate: 0.001 -> 0.0001" in r.getMessage()
        and "total_steps: 4 -> 6" in r.getMessage()
        for r in caplog.records
    )
    assert json.loads((run_copy / "config.json").read_text())["total_steps"] == TOTAL + 2


def test_checksum_mismatch_falls_back_to_the_previous_checkpoint(run_copy, caplog) -> None:
    config = _config()
    expected = saved_state(run_copy, TOTAL)
    sums = json.loads((run_copy / "checkpoints" / str(TOTAL) / checkpoint.CHECKSUM_FILE).read_text())
    assert any(name.startswith("state/") for name in sums)
    data = max(
        (p for p in (run_copy / "checkpoints" / str(TOTAL) / "state").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(b ^ 0xFF for b in raw[middle : middle + 64])
    data.write_bytes(bytes(raw))

    with caplog.at_level(logging.INFO):
        _train(config, run_copy)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"step {TOTAL} " in w and "differ from the checksums recorded at save" in w for w in warnings), warnings
    assert any("resuming from the checkpoint at step 2 " in r.getMessage() for r in caplog.records)
    assert [p.name.split("-")[0] for p in (run_copy / "checkpoints_corrupt").iterdir()] == [str(TOTAL)]
    assert_bitwise_equal(saved_state(run_copy, TOTAL), expected)


def test_deleted_checkpoints_restart_with_a_warning(run_copy, caplog) -> None:
    shutil.rmtree(run_copy / "checkpoints")
    with caplog.at_level(logging.INFO):
        state = _train(_config(total_steps=1), run_copy)
    assert int(state.step) == 1
    assert any(
        "held a run (config.json) but has no checkpoint" in r.getMessage() and "restarts from step 0" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def _write_lock(path: pathlib.Path, **holder) -> None:
    (path / workdir.LOCK_FILE).write_text(
        json.dumps({"host": socket.gethostname(), "heartbeat": time.time(), **holder})
    )


def test_second_writer_is_refused_and_stale_locks_are_taken_over(run_copy, caplog) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _write_lock(run_copy, pid=other.pid)
        with pytest.raises(workdir.WorkdirLockedError, match=rf"in use by process {other.pid} on host"):
            _train(_config(), run_copy)
        _write_lock(run_copy, pid=other.pid, host="elsewhere")
        with pytest.raises(workdir.WorkdirLockedError, match="host 'elsewhere'"):
            _train(_config(), run_copy)
    finally:
        other.kill()
        other.wait()
    assert _steps(run_copy) == [2, 4] and not (run_copy / "checkpoints_corrupt").exists()

    _write_lock(run_copy, pid=other.pid)  # a killed run on this host
    lock = workdir.WorkdirLock(run_copy)
    with caplog.at_level(logging.WARNING):
        lock.acquire()
    assert any(f"process {other.pid} on this host is gone" in r.getMessage() for r in caplog.records)
    with pytest.raises(workdir.WorkdirLockedError):  # now held by this live process
        workdir.WorkdirLock(run_copy).acquire()
    lock.release()
    assert not (run_copy / workdir.LOCK_FILE).exists()

    _write_lock(run_copy, pid=1, host="elsewhere", heartbeat=time.time() - workdir.STALE_AFTER_S - 5)
    state = _train(_config(), run_copy)  # resumes past the stale lock of another host
    assert int(state.step) == TOTAL and not (run_copy / workdir.LOCK_FILE).exists()


def test_ctrl_c_saves_like_sigterm(tmp_path: pathlib.Path) -> None:
    config = _config(total_steps=100)
    config.checkpoint.every_steps = 1000

    def interrupted(start: int):
        for step, batch in enumerate(synthetic_batches(config, start), start=start + 1):
            if step == 3:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(trainer.Preempted, match=r"preempted \(SIGINT\): saved a checkpoint at step 3 "):
        trainer.train(config, tmp_path, data_iterator_fn=interrupted)
    assert _steps(tmp_path) == [3]
    assert signal.getsignal(signal.SIGINT) is before


def test_overflowing_update_is_never_saved(tmp_path: pathlib.Path) -> None:
    """A learning rate of 1e39 (inf in float32) gives a finite loss and gradient but
    non-finite parameters at step 1, which would have been checkpointed."""
    config = _config(**{"schedule.peak_learning_rate": 1e39, "checkpoint.every_steps": 1})
    with pytest.raises(
        trainer.NonFiniteLossError, match=r"updated parameters hold NaN/Inf at step 1; stopping before saving it"
    ):
        _train(config, tmp_path)
    assert _steps(tmp_path) == []


def test_non_finite_gradient_norm_stops(tmp_path: pathlib.Path) -> None:
    ckpt = checkpoint.Checkpointer(tmp_path, _config())
    try:
        with pytest.raises(trainer.NonFiniteLossError, match=r"gradient norm is inf at step 7.*no checkpoint"):
            trainer._check_finite(7, {"loss": 1.0, "grad_norm": float("inf"), "params_finite": 1.0}, ckpt)
    finally:
        ckpt.close()


def test_intact_checkpoint_that_fails_to_restore_is_left_in_place(run_copy) -> None:
    """Files that match their recorded checksums are not corrupt: a restore failure is raised, nothing moved."""
    step_dir = run_copy / "checkpoints" / str(TOTAL)
    (step_dir / "state" / "_METADATA").unlink()
    (step_dir / checkpoint.CHECKSUM_FILE).write_text(json.dumps(checkpoint.file_checksums(epath.Path(step_dir))))
    with pytest.raises(RuntimeError, match=rf"step {TOTAL} .* matches the checksums recorded at save.*left in place"):
        _train(_config(), run_copy)
    assert _steps(run_copy) == [2, 4] and not (run_copy / "checkpoints_corrupt").exists()

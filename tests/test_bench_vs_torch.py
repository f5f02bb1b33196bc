"""benchmarks/bench_vs_torch.py: the --quick path end to end on our side, and its FLOP count.

The torchaudio reference needs its own Python (benchmarks/requirements-torch.txt); set
AUDIOSSL_TORCH_PYTHON to that interpreter to run the reference side too. Without it the
test runs our side only and says so.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_vs_torch.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_vs_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_step_flops_matches_hand_count_and_table_format():
    bench = _load_script()
    m, k, n = 3, 7, 5
    compiled = jax.jit(lambda a, b: a @ b).lower(jnp.ones((m, k)), jnp.ones((k, n))).compile()
    assert bench.step_flops(compiled) == 2 * m * k * n  # one multiply and one add per term
    assert bench.compiled_bytes(compiled) >= 4 * (m * k + k * n + m * n)
    row = bench.Row("train x", ours_s=0.5, theirs_s=2.0, examples=8, ours_mib=10.0, theirs_mib=None)
    cells = row.cells()
    assert cells[3] == "16.00" and cells[4] == "4.00" and cells[5] == "4.00" and cells[7] == "-"
    assert bench.idle_warning({"other_cores_busy": 1.5, "loadavg_1m": 3.0}, 2).startswith("WARNING")
    assert bench.idle_warning({"other_cores_busy": 0.0, "loadavg_1m": 0.0}, 2) is None


def test_quick_run_prints_one_table_with_every_row():
    torch_python = os.environ.get("AUDIOSSL_TORCH_PYTHON", "")
    if not torch_python:
        print(
            "AUDIOSSL_TORCH_PYTHON is not set: running our side only, the torchaudio reference is skipped "
            "(see benchmarks/requirements-torch.txt)"
        )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, str(SCRIPT), "--quick", "--steps=1", "--rounds=1", "--threads=1"]
    if torch_python:
        cmd.append(f"--torch_python={torch_python}")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    table = [line for line in lines if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == [
        "what",
        "ours s/call",
        "ref s/call",
        "ours /s",
        "ref /s",
        "ours/ref",
        "ours peak MiB",
        "ref peak MiB",
        "notes",
    ]
    rows = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")] for r in table[2:]}
    assert set(rows) == {
        "train cf_tiny b=2 1 s (float32)",
        "inference cf_tiny b=2 1 s (float32)",
        "logmel 2 x 1 s vs torch.stft+mel",
        "logmel 2 x 1 s vs librosa",
        "matmul 256^3 float32, /s = GFLOP/s",
        "matmul 256^3 bfloat16, /s = GFLOP/s",
    }
    for dtype in ("float32", "bfloat16"):  # the '/s' column is GFLOP/s of one 256^3 product
        assert float(rows[f"matmul 256^3 {dtype}, /s = GFLOP/s"][3].replace(",", "")) > 0
    train = rows["train cf_tiny b=2 1 s (float32)"]
    assert float(train[1]) > 0 and float(train[3].replace(",", "")) > 0
    assert "GFLOP/step" in train[8] and "largest batch <= 4" in train[8]
    assert train[8].rstrip().endswith(": 4")  # a tiny model at batch 4 fits any machine
    librosa_row = rows["logmel 2 x 1 s vs librosa"]
    assert float(librosa_row[4].replace(",", "")) > 0  # librosa runs here whatever the torch side
    if torch_python:
        assert float(train[2]) > 0 and "torchaudio 2.8.0" in out.stdout
    else:
        assert train[2] == "-" and "reference: not run" in out.stdout
    assert any(line.startswith("before the run: other processes busy") for line in lines)
    # every row's columns also reach stderr as the row finishes, so a run killed later keeps them
    measured = [line for line in out.stderr.splitlines() if line.startswith("measured train cf_tiny b=2 1 s")]
    assert len(measured) == 1 and f"ours s/call {train[1]}; " in measured[0] and "notes compile" in measured[0]
    assert f"ours peak MiB {train[6]}" in measured[0]


def test_depthwise_conv_lever_keeps_numerics():
    """DepthwiseConv equals the grouped nn.Conv it replaced: same parameters, same init, same output."""
    import flax.linen as nn
    import numpy as np

    from audiossl_jax.models.conformer import DepthwiseConv

    for k, d in ((15, 8), (4, 3)):  # odd and even kernels: 'SAME' padding on both sides
        x = jax.random.normal(jax.random.key(0), (2, 11, d))
        new = DepthwiseConv(k)
        old = nn.Conv(d, (k,), feature_group_count=d, padding="SAME", kernel_init=nn.initializers.lecun_normal())
        params = nn.unbox(new.init(jax.random.key(1), x))
        old_params = old.init(jax.random.key(1), x)
        np.testing.assert_array_equal(params["params"]["kernel"], old_params["params"]["kernel"])
        params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
        np.testing.assert_allclose(new.apply(params, x), old.apply(params, x), rtol=1e-5, atol=1e-5)
        # hand-worked tap: output frame 5 of channel 0 is sum_i x[5 - (k-1)//2 + i] * w[i] + b
        w, b = params["params"]["kernel"][:, 0, 0], params["params"]["bias"][0]
        left = (k - 1) // 2
        taps = [x[0, 5 - left + i, 0] * w[i] for i in range(k) if 0 <= 5 - left + i < 11]
        np.testing.assert_allclose(new.apply(params, x)[0, 5, 0], sum(taps) + b, rtol=1e-5)


def _fake_worker(tmp_path: pathlib.Path, on_train: str) -> str:
    """An executable standing in for the torch Python: answers 'hello', 'setup' and 'quit', runs the
    shell ``on_train`` on a 'train' command, and answers any other command with one time of 0.5 s."""
    fake = tmp_path / "fake_python"
    fake.write_text(
        '#!/bin/sh\nwhile read line; do case "$line" in\n'
        '*hello*) echo \'RESULT {"torch": "t", "torchaudio": "a", "threads": 1}\' ;;\n'
        "*setup*) echo 'RESULT {}' ;;\n"
        "*quit*) echo 'RESULT {}'; exit 0 ;;\n"
        f"*train*) {on_train} ;;\n"
        '*) echo \'RESULT {"times": [0.5], "peak_mib": 7.0}\' ;;\n'
        "esac; done\n"
    )
    fake.chmod(0o755)
    return str(fake)


def test_a_killed_worker_leaves_its_row_without_a_reference_time_and_is_restarted(tmp_path):
    bench = _load_script()
    ref = bench.Reference(_fake_worker(tmp_path, on_train="kill -9 $$"), threads=1)
    first = ref.proc
    calls = []
    timing = bench.alternate(lambda: calls.append(1), ref, "train", steps=2, rounds=2, base=bench._rss_bytes())
    assert len(calls) == 4 and timing.ours_s >= 0  # our side still runs every round
    assert timing.theirs_s is None and timing.theirs_mib is None
    assert "code -9 = SIGKILL, likely out of memory" in timing.note and "'train'" in timing.note
    assert ref.proc is not first and ref.info["torch"] == "t"  # a fresh worker answered 'hello'
    ref.proc.kill()
    row = bench.Row("train x", timing.ours_s or 1.0, timing.theirs_s, 8, extra=timing.note)
    assert row.cells()[2] == "-" and row.cells()[5] == "-"


def test_a_case_that_does_not_fit_is_a_row_saying_so(monkeypatch):
    bench = _load_script()
    monkeypatch.setattr(bench, "device_memory_limit", lambda: 1024)
    args = bench.parse_args(["--quick", "--steps=1", "--rounds=1", "--threads=1"])
    rows = bench.run_case(bench.Case("tiny", 2, 1.0), None, args, "float32", with_infer=True)
    assert len(rows) == 1 and rows[0].ours_s is None
    cells = rows[0].cells()
    assert cells[1] == "-" and cells[3] == "-" and cells[5] == "-"
    assert "not run: our compiled step needs" in cells[8] and "0.0 GiB available" in cells[8]


def test_crops_flag_takes_seconds():
    bench = _load_script()
    assert bench.crop_seconds(bench.parse_args(["--crops"]).crops) == bench.CROPS
    assert bench.crop_seconds(bench.parse_args(["--crops=40"]).crops) == (40.0,)
    assert bench.parse_args([]).crops == ""
    for bad in ("0", "x,2", "-1"):
        with pytest.raises(SystemExit, match="--crops"):
            bench.crop_seconds(bad)


def test_run_case_with_a_worker_killed_in_training_skips_it_for_inference(tmp_path):
    """After the worker dies on the train row, the restarted one holds no model: the inference
    row of the same case must not ask it."""
    bench = _load_script()
    ref = bench.Reference(_fake_worker(tmp_path, on_train="kill -9 $$"), threads=1)
    args = bench.parse_args(["--quick", "--steps=1", "--rounds=1", "--threads=1"])
    train, infer = bench.run_case(bench.Case("tiny", 2, 1.0), ref, args, "float32", with_infer=True)
    ref.close()
    assert train.theirs_s is None and "SIGKILL" in train.extra and "compile" in train.extra
    assert infer.theirs_s is None and infer.ours_s > 0


def test_a_case_over_half_the_memory_runs_the_sides_apart(tmp_path, monkeypatch):
    """Our step measured first and freed, then the reference's: both rows get both sides."""
    bench = _load_script()
    limits = iter([2**50, 1])  # fits (Ours' check), but over half of what is left (the case's)
    monkeypatch.setattr(bench, "device_memory_limit", lambda: next(limits))
    ref = bench.Reference(_fake_worker(tmp_path, on_train='echo \'RESULT {"times": [0.5], "peak_mib": 7.0}\''), 1)
    args = bench.parse_args(["--quick", "--steps=1", "--rounds=1", "--threads=1"])
    train, infer = bench.run_case(bench.Case("tiny", 2, 1.0), ref, args, "float32", with_infer=True)
    ref.close()
    for row in (train, infer):
        assert row.ours_s > 0 and row.theirs_s == 0.5 and row.theirs_mib == 7.0
    assert "sides apart: our step needs over half the available memory" in train.extra

"""benchmarks/bench_xla_flags.py: the summary's ratios by hand, and the --quick run end to end."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_xla_flags.py"


def _load_script():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_xla_flags", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_medians_ratios_and_failures():
    bench = _load_script()
    r = lambda t, i: {"compile_s": 1.0, "train_s": t, "infer_s": i, "matmul_gflops": 50.0}  # noqa: E731
    table = bench.summarise(
        ["", "--fast", "--bad"],
        {"": [r(2.0, 1.0), r(4.0, 1.0), r(3.0, 1.0)], "--fast": [r(1.0, 0.5), "failed (exit 1): x"], "--bad": ["nope"]},
    )
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:]] for line in table.splitlines()[2:]}
    assert rows["(default)"][:2] == ["3.000", "1.00x"]
    assert rows["--fast"][:4] == ["1.000", "3.00x", "0.500", "2.00x"]  # 3 / 1 and 1 / 0.5
    assert "1 of 2 rounds failed" in rows["--fast"][-1]
    assert rows["--bad"][0] == "nope"


def test_quick_run_reports_every_set_and_an_unknown_flag_as_failed():
    sets = ";--xla_no_such_flag_for_audiossl=1"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", "1", "--steps", "1", "--sets", sets],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 3, out
    assert "(default)" in table[1] and "1.00x" in table[1]
    assert "--xla_no_such_flag_for_audiossl=1" in table[2] and "failed" in table[2]


def test_trees_must_be_checkouts(tmp_path):
    bench = _load_script()
    try:
        bench.main(["--trees", str(tmp_path)])
    except SystemExit as e:
        assert str(tmp_path) in str(e) and "audiossl_jax" in str(e)
    else:
        raise AssertionError("a folder without the package was accepted")

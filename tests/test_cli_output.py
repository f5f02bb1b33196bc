"""What a user sees: the next commands printed after pre-training run as printed, and every
command's output is legible (no TensorFlow banner, no raw escape codes, no library INFO lines)."""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np

from audiossl_jax import config_lib, logs

REPO = pathlib.Path(__file__).resolve().parents[1]
OWN_MODULES = {p.name for p in (REPO / "audiossl_jax").rglob("*.py")}
ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ (\S+):\d+\] ")


def run_printed(command: str, *extra: str) -> subprocess.CompletedProcess:
    """Runs one printed ``python -m ...`` command (plus ``extra`` flags) as a user would: a fresh process
    whose environment holds none of the variables that ``logs`` sets (so the command must set them)."""
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-m"], command
    env = {k: v for k, v in os.environ.items() if k not in logs.quiet_environment(False)}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, *argv[1:], *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def noise(output: str) -> list[str]:
    """The lines a user should not see: banners, escape codes, other libraries' INFO lines."""
    bad = []
    for line in output.splitlines():
        absl = ABSL_LINE.match(line)
        if (
            "\x1b[" in line
            or "oneDNN" in line
            or "absl::InitializeLog" in line
            or (absl and absl.group(1) == "I" and absl.group(2) not in OWN_MODULES)
        ):
            bad.append(line)
    return bad


def test_quiet_environment_is_set_on_import_and_bars_only_on_a_terminal():
    assert logs.quiet_environment(True) == {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert logs.quiet_environment(False)["TQDM_DISABLE"] == "1"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_printed_next_commands_run_and_print_legibly(tmp_path):
    """The embed command, as printed after a pre-training run, on a fresh TFDS folder (the dataset is
    prepared: TFDS would draw progress bars), then the linear probe on its output."""
    from audiossl_jax import main

    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    config.data.data_dir = str(tmp_path / "tfds")
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(config.to_json_best_effort())
    commands = main.next_commands(config, str(workdir))
    assert [shlex.split(c)[2] for c in commands] == ["audiossl_jax.evaluation.embed"] * 2 + [
        "audiossl_jax.evaluation.linear"
    ]
    assert f"--split={config.data.train_split}" in commands[0] and f"--split={config.data.eval_split}" in commands[1]
    train_npz = workdir / "embeddings" / "train.npz"
    assert f"--out={train_npz}" in commands[0] and f"--train={train_npz}" in commands[2]

    out = run_printed(commands[0], "--untrained")  # no checkpoint in this run: its random initialisation
    assert out.returncode == 0, out.stderr[-3000:]
    lines = (out.stdout + out.stderr).splitlines()
    assert not noise(out.stdout + out.stderr), noise(out.stdout + out.stderr)
    assert len(lines) < 20, "\n".join(lines)
    assert any("wrote" in line and "train.npz" in line for line in lines)
    with np.load(train_npz) as f:
        assert f["scene"].shape[0] == 64 and np.isfinite(f["scene"]).all()

    shutil.copy(train_npz, workdir / "embeddings" / "test.npz")  # the same flags as the train split's command
    out = run_printed(commands[2])
    assert out.returncode == 0, out.stderr[-3000:]
    assert not noise(out.stdout + out.stderr) and not out.stderr.strip(), out.stderr
    assert 0.0 <= float(re.search(r'"accuracy": ([\d.]+)', out.stdout).group(1)) <= 1.0


def test_readme_next_section_holds_the_commands_the_demo_prints():
    from audiossl_jax import main

    readme = (REPO / "README.md").read_text()
    demo = readme.split("## Next", 1)[1].split("\n## ", 1)[0]
    printed = main.next_commands(config_lib.load_config_file("pretrain_cfS.py:demo"), "runs/demo")
    assert [f"    {c}" for c in printed] == [
        line for line in demo.splitlines() if line.startswith("    python -m audiossl_jax.evaluation.")
    ][:3]


def test_user_errors_exit_with_one_line_and_let_others_through():
    """``cli.user_errors``: the listed errors become ``error: <prefix><message>`` (SystemExit, so status 1
    and no traceback); any other error propagates unchanged."""
    import pytest

    from audiossl_jax import cli

    with pytest.raises(SystemExit) as stop:
        with cli.user_errors(ValueError, FileExistsError, prefix="invalid config: ", rewrite=str.upper):
            raise FileExistsError("runs/x exists")
    assert stop.value.code == "error: invalid config: RUNS/X EXISTS"
    with pytest.raises(KeyError, match="not a user error"):
        with cli.user_errors(ValueError):
            raise KeyError("not a user error")
    with pytest.raises(Exception, match="unexpected arguments: a b"):
        cli.start(["prog", "a", "b"])


def test_shared_flags_belong_to_their_command_and_finetune_runs_through_main():
    """The protocol's --helpshort lists the --config and --workdir that cli defines for it (and no multi-host
    flags of main); the old fine-tuning command names the one entry point instead of doing nothing."""
    out = run_printed("python -m audiossl_jax.evaluation.protocol", "--helpshort")  # absl exits 1 after help
    flags = set(re.findall(r"^  --(\w+)", out.stdout, re.M))
    assert {"config", "workdir", "max_runs"} <= flags and "distributed" not in flags, flags
    assert "Protocol config file" in out.stdout
    out = run_printed("python -m audiossl_jax.evaluation.finetune", "--config=configs/eval_finetune_cfS.py:smoke")
    assert out.returncode == 1 and "python -m audiossl_jax.main --config=configs/eval_finetune_cfS.py" in out.stderr

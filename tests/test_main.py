"""The command line: fast, clear failures before any work is done."""

import os
import pathlib
import subprocess
import sys

import pytest

from audiossl_jax import config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_main(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.run(
        [sys.executable, "-m", "audiossl_jax.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_paper_recipe_without_dataset_stops_with_instructions(tmp_path):
    out = run_main(
        "--config=configs/pretrain_cfL.py", f"--workdir={tmp_path}", f"--config.data.data_dir={tmp_path / 'tfds'}"
    )
    assert out.returncode != 0
    assert "'audioset'" in out.stderr
    assert "--config.data.name=audio_folder --config.data.path=" in out.stderr
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_unknown_override_key_is_named(tmp_path):
    out = run_main("--config=configs/pretrain_cfS.py:smoke", f"--workdir={tmp_path}", "--config.batchsize=3")
    assert out.returncode != 0
    assert "batchsize" in out.stderr and "batch_size" in out.stderr


def test_out_of_range_value_is_named(tmp_path):
    out = run_main("--config=configs/pretrain_cfS.py:smoke", f"--workdir={tmp_path}", "--config.task.mask_prob=1.5")
    assert out.returncode != 0
    assert "config.task.mask_prob=1.5" in out.stderr


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("model.num_heads", 3, "config.model.num_heads=3"),
        ("model.kernel_size", 4, "config.model.kernel_size=4"),
        ("task.temperature", 0.0, "config.task.temperature"),
        ("data.crop_seconds", 0.05, "config.data.crop_seconds"),
        ("compute_dtype", "float16", "config.compute_dtype"),
        ("data.train_fraction", 1.5, "config.data.train_fraction=1.5"),
    ],
)
def test_validate_names_bad_keys(key, value, match):
    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    parent, leaf = key.rsplit(".", 1) if "." in key else ("", key)
    node = config[parent] if parent else config
    node[leaf] = value
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        config_lib.validate(config)


def test_demo_and_paper_configs_validate():
    for size in ("S", "L"):
        for variant in ("", "demo", "smoke"):
            config_lib.validate(config_lib.load_config_file(f"pretrain_cf{size}.py:{variant}"))


def test_smoke_run_prints_parameters_mesh_and_progress(tmp_path):
    out = run_main(
        "--config=configs/pretrain_cfS.py:smoke",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.data_dir={tmp_path / 'tfds'}",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stderr
    assert "mesh (data=1, model=1)" in log
    assert "total" in log and "conformer/block0" in log
    assert "step 4/4 | loss" in log and "| acc 0." in log and "examples/s" in log and "ETA" in log
    assert (tmp_path / "run" / "checkpoints" / "4").is_dir()
    assert (tmp_path / "run" / "config.json").is_file()
    assert list((tmp_path / "run").glob("events.out.tfevents.*")), "no TensorBoard summaries"

"""Dry runs of launch/tpu.py and launch/slurm.py print the exact commands, in order."""

import pathlib
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def dry_run(script, *args):
    out = subprocess.run(
        [sys.executable, str(ROOT / "launch" / script), "--dry-run", *args], capture_output=True, text=True, timeout=60
    )
    return out.returncode, out.stdout, out.stderr


def test_tpu_multihost_queued_resource():
    rc, out, err = dry_run(
        "tpu.py",
        "--name=cfl",
        "--zone=us-central2-b",
        "--accelerator=v4-32",
        "--workdir=gs://b/runs/cfL",
        "--queued",
        "--spot",
        "--",
        "--config.compute_dtype=bfloat16",
    )
    assert rc == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    cmds = [shlex.split(line) for line in lines]
    assert cmds[0][:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "cfl"]
    assert "--accelerator-type=v4-32" in cmds[0] and "--runtime-version=tpu-ubuntu2204-base" in cmds[0]
    assert "--spot" in cmds[0] and "--zone=us-central2-b" in cmds[0]
    assert "# wait until ACTIVE: gcloud compute tpus queued-resources describe cfl" in out
    assert cmds[1][0] == "tar" and "--exclude=.venv" in cmds[1]
    assert cmds[2][3:5] == ["tpu-vm", "scp"] and "--worker=all" in cmds[2]
    assert "pip install" in cmds[3][-1] and "jax[tpu]==" in cmds[3][-1]
    run = cmds[4][-1]
    assert cmds[4][3:5] == ["tpu-vm", "ssh"] and "--worker=all" in cmds[4]
    assert (
        "python -m audiossl_jax.main --config=configs/pretrain_cfL.py --workdir=gs://b/runs/cfL "
        "--distributed=on --config.compute_dtype=bfloat16"
    ) in run
    assert cmds[5][:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "cfl"]
    assert len(cmds) == 6


@pytest.mark.parametrize(
    "accelerator,runtime,distributed",
    [
        ("v5litepod-8", "v2-alpha-tpuv5-lite", "off"),
        ("v5p-8", "v2-alpha-tpuv5", "off"),
        ("v6e-16", "v2-alpha-tpuv6e", "on"),
    ],
)
def test_tpu_vm_generations(accelerator, runtime, distributed):
    rc, out, err = dry_run(
        "tpu.py", "--name=t", "--zone=z", f"--accelerator={accelerator}", "--workdir=gs://b/r", "--keep"
    )
    assert rc == 0, err
    cmds = [shlex.split(line) for line in out.splitlines()]
    assert cmds[0][3:6] == ["tpu-vm", "create", "t"] and f"--version={runtime}" in cmds[0]
    assert f"--distributed={distributed}" in cmds[-1][-1]
    assert not any("delete" in c for c in cmds)  # --keep


def test_tpu_bad_input_is_named():
    rc, _, err = dry_run("tpu.py", "--name=t", "--zone=z", "--accelerator=v9-8", "--workdir=gs://b/r")
    assert rc == 2 and "--accelerator='v9-8'" in err
    rc, _, err = dry_run("tpu.py", "--name=t", "--zone=z", "--accelerator=v4-32", "--workdir=/local/run")
    assert rc == 2 and "4-host slice needs a shared gs:// workdir" in err


def test_tpu_hosts_per_slice():
    sys.path.insert(0, str(ROOT / "launch"))
    import tpu

    assert tpu.parse_accelerator("v4-8")[1:] == (4, 1)
    assert tpu.parse_accelerator("v4-32")[1:] == (16, 4)
    assert tpu.parse_accelerator("v5p-128")[1:] == (64, 16)
    assert tpu.parse_accelerator("v5litepod-8")[1:] == (8, 1)
    assert tpu.parse_accelerator("v5litepod-16")[1:] == (16, 4)
    assert tpu.parse_accelerator("v6e-256")[1:] == (256, 64)


def test_slurm_script():
    rc, out, err = dry_run(
        "slurm.py",
        "--nodes=2",
        "--gpus-per-node=8",
        "--partition=gpu",
        "--workdir=/shared/runs/cfL",
        "--",
        "--config.compute_dtype=bfloat16",
    )
    assert rc == 0, err
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=8\n#SBATCH --gpus-per-node=8" in out
    assert "#SBATCH --signal=TERM@120" in out and "#SBATCH --requeue" in out and "#SBATCH --partition=gpu" in out
    assert (
        "srun python -m audiossl_jax.main --config=configs/pretrain_cfL.py --workdir=/shared/runs/cfL "
        "--distributed=on --config.compute_dtype=bfloat16"
    ) in out
    assert out.rstrip().splitlines()[-1] == "sbatch --parsable audiossl.sbatch"
    rc, _, err = dry_run("slurm.py", "--nodes=0", "--workdir=/x")
    assert rc == 2 and "--nodes=0" in err

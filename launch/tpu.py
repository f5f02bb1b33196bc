"""Runs ``python -m audiossl_jax.main`` on a Cloud TPU VM or queued resource, then deletes it.

    python launch/tpu.py --name=cfl --zone=us-central2-b --accelerator=v4-32 \
        --workdir=gs://BUCKET/runs/cfL --config=configs/pretrain_cfL.py [--queued] [--spot] \
        [--dry-run] -- --config.compute_dtype=bfloat16

Steps: create the TPU (``gcloud compute tpus tpu-vm create`` or, with --queued,
``queued-resources create`` and wait until ACTIVE), pack this checkout and copy it to
every worker, install it with jax[tpu], run the same command on every worker (logs
stream here; multi-host slices join through ``--distributed=on``), delete the TPU
(unless --keep). --dry-run prints every command instead of running it.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
JAX_VERSION = "0.10.2"


@dataclasses.dataclass(frozen=True)
class Generation:
    """A TPU generation: naming, runtime image and hosts."""

    prefix: str
    runtime: str
    cores_per_chip: int  # the accelerator-type suffix counts TensorCores (v4, v5p) or chips
    chips_per_host: int


GENERATIONS = {
    "v4": Generation("v4", "tpu-ubuntu2204-base", 2, 4),
    "v5e": Generation("v5litepod", "v2-alpha-tpuv5-lite", 1, 8),
    "v5p": Generation("v5p", "v2-alpha-tpuv5", 2, 4),
    "v6e": Generation("v6e", "v2-alpha-tpuv6e", 1, 8),
}


def parse_accelerator(accelerator: str) -> tuple[Generation, int, int]:
    """'v4-32' -> (generation, chips, hosts). Multi-host v5e/v6e slices have 4 chips a host."""
    prefix, _, count = accelerator.rpartition("-")
    gen = next((g for g in GENERATIONS.values() if g.prefix == prefix), None)
    if gen is None or not count.isdigit():
        known = ", ".join(f"{g.prefix}-N" for g in GENERATIONS.values())
        raise ValueError(f"--accelerator={accelerator!r}: expected one of {known} (e.g. v4-32, v5litepod-16, v6e-8).")
    chips = int(count) // gen.cores_per_chip
    if chips < 1:
        raise ValueError(f"--accelerator={accelerator!r}: too few cores for one chip.")
    per_host = gen.chips_per_host if chips <= gen.chips_per_host else 4
    return gen, chips, max(chips // per_host, 1)


def commands(args: argparse.Namespace) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """(create, run, delete) command lists for ``args``."""
    gen, _, hosts = parse_accelerator(args.accelerator)
    if hosts > 1 and not args.workdir.startswith("gs://"):
        raise ValueError(f"--workdir={args.workdir!r}: a {hosts}-host slice needs a shared gs:// workdir.")
    loc = [f"--zone={args.zone}"] + ([f"--project={args.project}"] if args.project else [])
    tpu = ["gcloud", "compute", "tpus"]
    spot = ["--spot"] if args.spot else []
    if args.queued:
        create = [
            tpu
            + [
                "queued-resources",
                "create",
                args.name,
                f"--node-id={args.name}",
                f"--accelerator-type={args.accelerator}",
                f"--runtime-version={gen.runtime}",
            ]
            + loc
            + spot,
            tpu + ["queued-resources", "describe", args.name, "--format=value(state.state)"] + loc,
        ]
        delete = [tpu + ["queued-resources", "delete", args.name, "--force", "--quiet"] + loc]
    else:
        create = [
            tpu
            + ["tpu-vm", "create", args.name, f"--accelerator-type={args.accelerator}", f"--version={gen.runtime}"]
            + loc
            + spot
        ]
        delete = [tpu + ["tpu-vm", "delete", args.name, "--quiet"] + loc]
    ssh = tpu + ["tpu-vm", "ssh", args.name, "--worker=all"] + loc + ["--command"]
    tarball = "/tmp/audiossl_jax.tgz"
    main = [
        "python",
        "-m",
        "audiossl_jax.main",
        f"--config={args.config}",
        f"--workdir={args.workdir}",
        f"--distributed={'on' if hosts > 1 else 'off'}",
    ] + args.overrides
    run = [
        ["tar", "-czf", tarball, "-C", str(ROOT), "--exclude=.venv", "--exclude=.git", "--exclude=runs", "."],
        tpu + ["tpu-vm", "scp", tarball, f"{args.name}:~/audiossl_jax.tgz", "--worker=all"] + loc,
        ssh
        + [
            "mkdir -p ~/audiossl_jax && tar -xzf ~/audiossl_jax.tgz -C ~/audiossl_jax && cd ~/audiossl_jax && "
            "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . "
            f"'jax[tpu]=={JAX_VERSION}' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
        ],
        ssh + ["cd ~/audiossl_jax && . .venv/bin/activate && " + shlex.join(main)],
    ]
    return create, run, delete


def execute(cmd: list[str], dry_run: bool) -> None:
    print(shlex.join(cmd), flush=True)
    if not dry_run:
        subprocess.run(cmd, check=True)


def wait_active(describe: list[str], dry_run: bool, poll_s: float = 30.0) -> None:
    """Polls a queued resource until ACTIVE; fails on FAILED/SUSPENDED."""
    print(f"# wait until ACTIVE: {shlex.join(describe)}", flush=True)
    while not dry_run:
        state = subprocess.run(describe, check=True, capture_output=True, text=True).stdout.strip()
        if state == "ACTIVE":
            return
        if state in ("FAILED", "SUSPENDED"):
            raise RuntimeError(f"queued resource is {state}; see {shlex.join(describe[:-1])}")
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--zone", required=True)
    parser.add_argument("--accelerator", required=True, help="v4-8, v4-32, v5litepod-16, v5p-8, v6e-8, ...")
    parser.add_argument("--workdir", required=True, help="gs://BUCKET/... (required for multi-host)")
    parser.add_argument("--config", default="configs/pretrain_cfL.py")
    parser.add_argument("--project", default=None)
    parser.add_argument("--queued", action="store_true", help="use a queued resource")
    parser.add_argument("--spot", action="store_true", help="spot capacity (preemptible)")
    parser.add_argument("--keep", action="store_true", help="do not delete the TPU at the end")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("overrides", nargs="*", help="after --: extra flags for audiossl_jax.main")
    args = parser.parse_args(argv)
    try:
        create, run, delete = commands(args)
    except ValueError as e:
        parser.error(str(e))
    execute(create[0], args.dry_run)
    if args.queued:
        wait_active(create[1], args.dry_run)
    try:
        for cmd in run:
            execute(cmd, args.dry_run)
    finally:
        if not args.keep:
            for cmd in delete:
                execute(cmd, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

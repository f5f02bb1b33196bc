"""Submits ``python -m audiossl_jax.main`` to a SLURM GPU cluster, one process per GPU.

    python launch/slurm.py --nodes=2 --gpus-per-node=8 --workdir=/shared/runs/cfL \
        --config=configs/pretrain_cfL.py [--partition=gpu] [--time=24:00:00] [--dry-run] \
        -- --config.compute_dtype=bfloat16

Writes an sbatch script (``srun`` starts nodes x gpus-per-node tasks; jax.distributed
reads the SLURM environment), submits it with ``sbatch`` and follows the log. SLURM
sends SIGTERM two minutes before the time limit (``--signal``): the trainer saves a
checkpoint and ``--requeue`` resubmits, which resumes. --dry-run prints the script and
the sbatch command. Every value written into the script is shell-quoted, and a value
holding a newline (which would start a new script line) is refused.
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sbatch_script(args: argparse.Namespace) -> str:
    """The batch script for ``args``."""
    if args.nodes < 1 or args.gpus_per_node < 1:
        raise ValueError(f"--nodes={args.nodes} and --gpus-per-node={args.gpus_per_node} must be >= 1.")
    values = {
        "--name": args.name,
        "--time": args.time,
        "--log": args.log,
        "--partition": args.partition or "",
        "--workdir": args.workdir,
        "--config": args.config,
        "--code-dir": str(args.code_dir),
        "--venv": str(args.venv),
        **{f"override {o!r}": o for o in args.overrides},
    }
    for flag, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"{flag}={value!r} holds a newline, which would start a new line of the batch script.")
    main = [
        "python",
        "-m",
        "audiossl_jax.main",
        f"--config={args.config}",
        f"--workdir={args.workdir}",
        "--distributed=on" if args.nodes * args.gpus_per_node > 1 else "--distributed=off",
    ] + args.overrides
    directives = [
        ("job-name", args.name),
        ("nodes", args.nodes),
        ("ntasks-per-node", args.gpus_per_node),
        ("gpus-per-node", args.gpus_per_node),
        ("time", args.time),
        ("output", args.log),
        ("signal", "TERM@120"),
    ]
    if args.partition:
        directives.append(("partition", args.partition))
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH --{key}={shlex.quote(str(value))}" for key, value in directives),
        "#SBATCH --requeue",
    ]
    lines += [
        "set -euo pipefail",
        f"cd {shlex.quote(str(args.code_dir))}",
        f". {shlex.quote(str(args.venv))}/bin/activate",
        "srun " + shlex.join(main),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="audiossl")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--time", default="24:00:00")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--workdir", required=True, help="on a file system every node sees")
    parser.add_argument("--config", default="configs/pretrain_cfL.py")
    parser.add_argument("--code-dir", type=pathlib.Path, default=ROOT)
    parser.add_argument("--venv", type=pathlib.Path, default=ROOT / ".venv")
    parser.add_argument("--log", default="slurm-%j.out")
    parser.add_argument("--script", type=pathlib.Path, default=pathlib.Path("audiossl.sbatch"))
    parser.add_argument("--dry-run", action="store_true", help="print the script and the command, run nothing")
    parser.add_argument("overrides", nargs="*", help="after --: extra flags for audiossl_jax.main")
    args = parser.parse_args(argv)
    try:
        script = sbatch_script(args)
    except ValueError as e:
        parser.error(str(e))
    submit = ["sbatch", "--parsable", str(args.script)]
    if args.dry_run:
        print(f"# {args.script}\n{script}{shlex.join(submit)}")
        return 0
    args.script.write_text(script)
    job = subprocess.run(submit, check=True, capture_output=True, text=True).stdout.strip().split(";")[0]
    log = args.log.replace("%j", job)
    print(f"submitted job {job}; following {log} (Ctrl-C stops following, not the job)", flush=True)
    subprocess.run(
        [
            "bash",
            "-c",
            f"until [ -f {shlex.quote(log)} ]; do sleep 5; done; "
            f"tail -F {shlex.quote(log)} & "
            f"while squeue -h -j {job} | grep -q .; do sleep 30; done; kill $!",
        ],
        check=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

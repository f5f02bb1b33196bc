"""Which XLA:CPU backend flags (or code versions) speed up our pre-training step, side by side in one run.

    python benchmarks/bench_xla_flags.py [--size S] [--steps 3] [--rounds 2] [--sets "A;B;..."] [--quick]
    python benchmarks/bench_xla_flags.py --sets "" --trees "/tmp/before;."   # a change, before and after

XLA reads ``XLA_FLAGS`` once, when the backend starts, so every flag set runs in a child
process of its own (this file with ``--child``), and the sets take turns round by round
so that a change in the machine's load hits all of them alike. Each child builds the
conformer pre-training step of ``bench_vs_torch.Ours`` (batch 8 x 10 s, float32) and
reports its compile time, the median train step and embedding call, and a float32
2048^3 matmul. A set that this jaxlib does not accept (XLA aborts on unknown flags) or
that fails is reported with its error, never dropped. The default sets are the GEMM
and fusion backends that jaxlib 0.10's XLA:CPU offers: oneDNN, XNNPACK and YNNPACK.
Only ratios to the default set within one run mean anything on a shared CPU; the
script measures the load of other processes and warns when the machine is not idle.
``--trees`` runs every set with the package imported from each of several checkouts
(e.g. ``git worktree add /tmp/before HEAD~1``), to time a change the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_torch import Case, Ours, cpu_model, idle_warning, other_load, time_calls  # noqa: E402

DEFAULT_SETS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_fusion_type=dot",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_fusion_type=dot",
    "--xla_cpu_experimental_ynn_fusion_type=dot",
)
MATMUL_N = 2048


def child(case: Case, steps: int) -> dict[str, float]:
    """Times of one flag set in this process: compile s, train s/step, embed s/call, matmul GFLOP/s."""
    import jax
    import jax.numpy as jnp

    ours = Ours(case, "float32")
    train = float(np.median(time_calls(ours.train_one, steps)))
    infer = float(np.median(time_calls(ours.infer_one, steps)))
    n = MATMUL_N if case.size != "tiny" else 256
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    sec = float(np.median(time_calls(lambda: mm(a).block_until_ready(), max(steps, 5))))
    return {"compile_s": ours.compile_s, "train_s": train, "infer_s": infer, "matmul_gflops": 2 * n**3 / sec / 1e9}


def run_child(tree: str, flags: str, args: argparse.Namespace) -> dict[str, float] | str:
    """One child run of ``flags`` on the package of checkout ``tree``: its result, or why it failed."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--size", args.size, "--steps", str(args.steps)]
    cmd += ["--quick"] if args.quick else []
    env = dict(os.environ, XLA_FLAGS=flags, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.path.abspath(tree))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return f"failed (exit {proc.returncode}): " + (lines[-1][:160] if lines else "no output")


def summarise(sets: list[str], results: dict[str, list[dict[str, float] | str]]) -> str:
    """The table: medians over rounds, ratios = the first set's time over this set's (> 1 = faster)."""

    def med(s: str, key: str) -> float:
        return float(np.median([r[key] for r in results[s] if isinstance(r, dict)]))

    base = sets[0]
    ok_base = any(isinstance(r, dict) for r in results[base])
    lines = [
        f"| {'XLA_FLAGS':<48} | {'train s/step':>12} | {'speed-up':>8} | {'embed s/call':>12} | "
        f"{'speed-up':>8} | {'matmul GFLOP/s':>14} | {'compile s':>9} |",
        f"|{'-' * 50}|{'-' * 14}|{'-' * 10}|{'-' * 14}|{'-' * 10}|{'-' * 16}|{'-' * 11}|",
    ]
    for s in sets:
        name = s.strip() or "(default)"
        fails = [r for r in results[s] if isinstance(r, str)]
        if len(fails) == len(results[s]):
            lines.append(f"| {name:<48} | {fails[0]} |")
            continue
        train, infer = med(s, "train_s"), med(s, "infer_s")
        up_t = f"{med(base, 'train_s') / train:.2f}x" if ok_base else "-"
        up_i = f"{med(base, 'infer_s') / infer:.2f}x" if ok_base else "-"
        note = f" ({len(fails)} of {len(results[s])} rounds failed: {fails[0]})" if fails else ""
        lines.append(
            f"| {name:<48} | {train:>12.3f} | {up_t:>8} | {infer:>12.3f} | {up_i:>8} | "
            f"{med(s, 'matmul_gflops'):>14.1f} | {med(s, 'compile_s'):>9.1f} |{note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="S", choices=("S", "L"))
    p.add_argument("--steps", type=int, default=3, help="timed calls per set per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sets", default=";".join(DEFAULT_SETS), help="';'-separated XLA_FLAGS values; first = baseline")
    p.add_argument("--trees", default=".", help="';'-separated checkouts whose package each child imports")
    p.add_argument("--quick", action="store_true", help="tiny shapes, every code path (for the test)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    case = Case("tiny", 2, 1.0) if args.quick else Case(args.size, 8, 10.0)
    if args.child:
        print(json.dumps(child(case, args.steps)), flush=True)
        return
    trees = args.trees.split(";")
    for tree in trees:
        if not os.path.isdir(os.path.join(tree, "audiossl_jax")):
            raise SystemExit(f"--trees: {tree!r} holds no audiossl_jax package; give checkouts of this repository")
    variants = [(t, f) for t in trees for f in args.sets.split(";")]
    label = {v: (f"[{os.path.basename(os.path.abspath(v[0]))}] " if len(trees) > 1 else "") + v[1] for v in variants}
    load = other_load()
    print(
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {cpu_model()} | {os.cpu_count()} cores | "
        f"case: {'tiny' if args.quick else 'cf_' + case.size} batch {case.batch} x {case.seconds:g} s, float32 | "
        f"before: other processes busy {load['other_cores_busy']:.2f} cores",
        flush=True,
    )
    warn = idle_warning(load, os.cpu_count() or 1)
    if warn:
        print(warn, flush=True)
    results: dict[str, list[dict[str, float] | str]] = {label[v]: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            results[label[v]].append(run_child(*v, args))
            print(f"round {r + 1}, {label[v] or '(default)'}: {results[label[v]][-1]}", flush=True)
    print(summarise([label[v] for v in variants], results))
    after = other_load()
    print(f"after: other processes busy {after['other_cores_busy']:.2f} cores")
    warn = idle_warning(after, os.cpu_count() or 1)
    if warn:
        print(warn)


if __name__ == "__main__":
    main()

"""Pre-training step and frontend throughput, side by side in one run.

    python benchmarks/bench_pretrain.py [--sizes S,L] [--steps 5] [--dtypes float32,bfloat16]

Prints one table: seconds per train step, examples/s and achieved FLOP/s of the cf_S
and cf_L pre-training steps for a batch of 8 clips of 10 s (500 frames at the 20 ms
hop), next to this machine's measured float32 matmul peak; and the frontend's seconds
of audio per second on 10 s clips. FLOPs come from XLA's cost analysis of the compiled
step. On a GPU it adds bfloat16 compute and MFU against ``--peak_tflops``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from audiossl_jax import config_lib, frontend  # noqa: E402
from audiossl_jax.train import sharding, trainer  # noqa: E402

BATCH, SECONDS = 8, 10.0


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` (which must block) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_peak(dtype: jnp.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of an n x n matmul: the practical peak of this device."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    return 2 * n**3 / timed(lambda: f(a).block_until_ready(), repeats)


def bench_step(size: str, dtype: str, steps: int) -> dict[str, float]:
    config = config_lib.load_config_file(f"pretrain_cf{size}.py")
    config.batch_size = BATCH
    config.data.crop_seconds = SECONDS
    config.compute_dtype = dtype
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    s = trainer.setup(config, mesh)
    n = int(SECONDS * config.frontend.sample_rate)
    rng = np.random.default_rng(0)
    batch = sharding.global_batch(
        {
            "waveform": (0.1 * rng.normal(size=(BATCH, n))).astype(np.float32),
            "length": np.full(BATCH, n, np.int32),
            "label": np.zeros(BATCH, np.int32),
        },
        mesh,
    )
    state = s.init_fn()
    t0 = time.perf_counter()
    compiled = s.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan")))
    holder = {"state": state}

    def one() -> None:
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready(metrics)

    one()
    sec = timed(one, steps)
    return {
        "sec_per_step": sec,
        "examples_per_sec": BATCH / sec,
        "flops_per_step": flops,
        "flops_per_sec": flops / sec,
        "compile_s": compile_s,
    }


def bench_frontend(repeats: int) -> float:
    """Seconds of 10-s audio turned into logmels per wall-clock second (batch 8)."""
    cfg = frontend.FrontendConfig.from_config(frontend.preset_config_dict("conformer"))
    n = int(SECONDS * cfg.sample_rate)
    wave = jax.random.normal(jax.random.key(0), (BATCH, n)) * 0.1
    f = jax.jit(lambda w: frontend.logmel(w, cfg))
    f(wave).block_until_ready()
    return BATCH * SECONDS / timed(lambda: f(wave).block_until_ready(), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S,L")
    parser.add_argument("--steps", type=int, default=5)
    on_gpu = jax.default_backend() == "gpu"
    parser.add_argument("--dtypes", default="float32,bfloat16" if on_gpu else "float32")
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=0.0,
        help="vendor dense bf16 peak for MFU (e.g. 989 for H100 SXM); 0 = skip MFU",
    )
    args = parser.parse_args()

    device = jax.devices()[0]
    print(
        f"machine: {platform.node()} | backend {jax.default_backend()} | {device.device_kind} x "
        f"{jax.device_count()} | {os.cpu_count()} CPU cores | jax {jax.__version__}"
    )
    peak = matmul_peak(jnp.float32)
    print(f"measured float32 matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for size in args.sizes.split(","):
        for dtype in args.dtypes.split(","):
            r = bench_step(size, dtype, args.steps)
            mfu = f"{r['flops_per_sec'] / (args.peak_tflops * 1e12):.1%}" if args.peak_tflops else "-"
            rows.append((f"cf_{size} pretrain step ({dtype})", r, mfu))
    header = (
        f"| {'what':<32} | {'s/step':>8} | {'examples/s':>10} | {'GFLOP/step':>10} | {'GFLOP/s':>9} | "
        f"{'% fp32 matmul peak':>18} | {'MFU':>6} | {'compile s':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, r, mfu in rows:
        print(
            f"| {name:<32} | {r['sec_per_step']:>8.3f} | {r['examples_per_sec']:>10.2f} | "
            f"{r['flops_per_step'] / 1e9:>10.1f} | {r['flops_per_sec'] / 1e9:>9.1f} | "
            f"{100 * r['flops_per_sec'] / peak:>17.1f}% | {mfu:>6} | {r['compile_s']:>9.1f} |"
        )
    rate = bench_frontend(max(args.steps, 5))
    print(f"frontend logmel (conformer preset, 8 clips of 10 s): {rate:,.0f} seconds of audio per second")


if __name__ == "__main__":
    main()

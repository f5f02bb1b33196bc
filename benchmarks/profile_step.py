"""Where the cf_S pre-training step spends its time, part by part, and what the cheap levers buy.

    python benchmarks/profile_step.py [--size S] [--batch 8] [--seconds 10] [--repeats 3]

Each part of the step is jitted alone on the step's own shapes and timed forward and
backward (median of ``--repeats``), then multiplied by how often the step runs it
(24 FFNs, 12 convolution modules, 12 attention modules): the frontend, the three block
parts (without dropout), the dropout masks' random bits (every dropout of the step: ours, Flax's
``nn.Dropout``, ours with rbg keys), the distractor gather with the contrastive loss, and the AdamW update; next to
the whole step. XLA's FLOP count of each part is printed with it. The lever rows time
alternative formulations of the same part side by side in the same run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from audiossl_jax import config_lib, frontend  # noqa: E402
from audiossl_jax.models import conformer, layers  # noqa: E402
from audiossl_jax.tasks import wav2vec2 as w2v  # noqa: E402
from audiossl_jax.train import optim, sharding, trainer  # noqa: E402

LEVER_ROWS = ("dropout masks (flax nn.Dropout)", "dropout masks (ours, rbg)")


def timed(fn: Callable[..., Any], *args: Any, repeats: int) -> tuple[float, float]:
    """(median seconds per call, XLA FLOPs) of ``jax.jit(fn)(*args)``."""
    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(cost.get("flops", 0.0))


def fwd_bwd(module: Any, x: jax.Array, *extra: Any) -> Callable[..., Any]:
    """A function (params, x, key) -> gradients of sum(module(x)^2) w.r.t. params and x, in train mode."""

    def loss(params: Any, x: jax.Array, key: jax.Array) -> jax.Array:
        out = module.apply({"params": params}, x, *extra, train=True, rngs={"dropout": key})
        return jnp.square(out).sum()  # squared: a plain sum lets XLA drop work from the backward pass

    return jax.grad(loss, argnums=(0, 1))


def depthwise_shift_add(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """'SAME' depthwise convolution as a sum of shifted copies: x [B, T, D], kernel [K, 1, D]."""
    k = kernel.shape[0]
    left = (k - 1) // 2
    padded = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    t = x.shape[1]
    return sum(padded[:, i : i + t] * kernel[i, 0] for i in range(k)) + bias


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="S")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--whole_step",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also compile and time the whole step (percentages are of it; else of the parts' sum)",
    )
    args = p.parse_args()

    config = config_lib.load_config_file(f"pretrain_cf{args.size}.py")
    config.batch_size, config.data.crop_seconds = args.batch, args.seconds
    m = config.model
    fe = frontend.FrontendConfig.from_config(config.frontend)
    n = frontend.seconds_to_samples(args.seconds, fe.sample_rate)
    b, steps, d = args.batch, frontend.num_frames(n, fe) // m.stack, m.model_dim
    key = jax.random.key(0)
    x = jax.random.normal(key, (b, steps, d))
    mask = jnp.ones((b, steps), bool)
    wave = 0.1 * jax.random.normal(key, (b, n))
    rows: list[tuple[str, int, float, float]] = []  # (part, times per step, s per call, flops per call)

    def part(name: str, count: int, fn: Callable[..., Any], *fargs: Any) -> float:
        sec, flops = timed(fn, *fargs, repeats=args.repeats)
        rows.append((name, count, sec, flops))
        return sec

    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, devices=jax.devices()[:1])
    s = trainer.setup(config, mesh)
    state = s.init_fn()
    batch = sharding.global_batch(
        {"waveform": np.asarray(wave), "length": np.full(b, n, np.int32), "label": np.zeros(b, np.int32)}, mesh
    )
    step_s, step_flops = float("nan"), float("nan")
    if args.whole_step:
        step_s, step_flops = timed(lambda st, bt: s.train_step(st, bt)[1], state, batch, repeats=args.repeats)

    part("frontend (logmel)", 1, lambda w: frontend.logmel(w, fe), wave)
    # The block parts run without dropout: its random bits are the "dropout masks" rows.
    ffn = conformer.FeedForward(m.ffn_dim, 0.0)
    conv = conformer.ConvModule(m.kernel_size, 0.0)
    attn = conformer.SelfAttention(m.num_heads, 0.0)
    for name, count, module, extra in (
        ("FFN (fwd+bwd)", 2 * m.num_blocks, ffn, ()),
        ("conv module (fwd+bwd)", m.num_blocks, conv, (mask,)),
        ("attention (fwd+bwd)", m.num_blocks, attn, (mask,)),
    ):
        params = nn.unbox(module.init(key, x, *extra, train=False))["params"]
        part(name, count, fwd_bwd(module, x, *extra), params, x, key)
    # Every dropout of one step: per block 2 FFNs x 2, conv 1, attention probabilities + output.
    drop_elems = m.num_blocks * (2 * (m.ffn_dim + d) + d + d + m.num_heads * steps) * b * steps + b * steps * d
    # Ours (models.layers: two 16-bit decisions per uint32 word) beside Flax's nn.Dropout
    # (a float32 uniform per element), and ours with rbg keys instead of threefry.
    threefry, rbg = jax.random.key(0), jax.random.key(0, impl="rbg")
    part("dropout masks (ours, threefry)", 1, lambda kk: layers.keep_mask(kk, 0.1, (drop_elems,))[0], threefry)
    part("dropout masks (flax nn.Dropout)", 1, lambda kk: jax.random.bernoulli(kk, 0.9, (drop_elems,)), threefry)
    part("dropout masks (ours, rbg)", 1, lambda kk: layers.keep_mask(kk, 0.1, (drop_elems,))[0], rbg)
    slots = int(np.ceil(config.task.mask_prob * steps))
    ctx = jax.random.normal(key, (b, steps, m.latent_dim))

    def contrastive(c: jax.Array, q: jax.Array) -> jax.Array:
        idx = jnp.tile(jnp.arange(slots)[None], (b, 1))
        cc = jnp.take_along_axis(c, idx[..., None], axis=1)
        qq = jnp.take_along_axis(q, idx[..., None], axis=1)
        neg = w2v.sample_distractors(key, jnp.full((b,), slots), slots, config.task.num_negatives)
        logits, _ = w2v.contrastive_logits(cc, qq, qq[jnp.arange(b)[:, None, None], neg], config.task.temperature)
        return -jax.nn.log_softmax(logits, -1)[..., 0].mean()

    part("distractor gather + loss (fwd+bwd)", 1, jax.grad(contrastive, argnums=(0, 1)), ctx, ctx)
    tx, _ = optim.make_optimizer(config)
    opt_state = tx.init(state.params)
    part("AdamW update", 1, lambda g, o, pp: tx.update(g, o, pp), state.params, opt_state, state.params)

    # The step's own dropout is ours with threefry keys; the other two mask rows are levers.
    parts_s = sum(count * sec for name, count, sec, _ in rows if name not in LEVER_ROWS)
    total, of = (step_s, "step") if args.whole_step else (parts_s, "parts")
    print(
        f"cf_{args.size}, batch {b} x {args.seconds:g} s ({steps} steps), jax {jax.__version__}, "
        f"{jax.default_backend()}; whole train step: {step_s:.3f} s, {step_flops / 1e9:.1f} GFLOP; "
        f"sum of the parts (dropout: ours, threefry): {parts_s:.3f} s"
    )
    print(
        f"| {'part':<38} | {'x/step':>6} | {'ms/call':>8} | {'ms/step':>8} | {'% of ' + of:>10} | {'GFLOP/step':>10} |"
    )
    print(f"|{'-' * 40}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 12}|{'-' * 12}|")
    for name, count, sec, flops in sorted(rows, key=lambda r: -r[1] * r[2]):
        print(
            f"| {name:<38} | {count:>6} | {1e3 * sec:>8.2f} | {1e3 * sec * count:>8.1f} | "
            f"{100 * sec * count / total:>9.1f}% | {flops * count / 1e9:>10.2f} |"
        )

    print("\nlevers (same shapes, same run):")
    conv_params = nn.unbox(conv.init(key, x, mask, train=False))["params"]["depthwise"]
    kern, bias = conv_params["kernel"], conv_params["bias"]

    def lax_conv(xx: jax.Array, kk: jax.Array, bb: jax.Array) -> jax.Array:
        return (
            jax.lax.conv_general_dilated(
                xx, kk, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=d
            )
            + bb
        )

    for name, fn in (
        ("depthwise conv, grouped lax.conv", lax_conv),
        ("depthwise conv, shift-and-add", depthwise_shift_add),
    ):
        g = jax.grad(lambda xx, kk, bb, f=fn: jnp.square(f(xx, kk, bb)).sum(), argnums=(0, 1, 2))
        sec, _ = timed(g, x, kern, bias, repeats=args.repeats)
        print(f"  {name:<40} fwd+bwd {1e3 * sec:8.2f} ms/call")


if __name__ == "__main__":
    main()

"""Learning-rate schedules and the optimizer, built from ``config.schedule`` and ``config.optimizer``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("warmup_linear_decay", "tri_stage")


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """The schedule named by ``config.schedule.name`` (one of ``SCHEDULES``)."""
    s = config.schedule
    if s.name == "tri_stage":
        return tri_stage_schedule(config)
    if s.name != "warmup_linear_decay":
        raise ValueError(f"config.schedule.name={s.name!r}: use one of {SCHEDULES}.")
    return warmup_linear_decay_schedule(config)


def tri_stage_steps(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """(warm-up, hold, decay) step counts: round(fraction * config.total_steps) each."""
    s, total = config.schedule, int(config.total_steps)
    fractions = {k: float(s[k]) for k in ("warmup_fraction", "hold_fraction", "decay_fraction")}
    for key, value in fractions.items():
        if not 0 <= value <= 1:
            raise ValueError(f"config.schedule.{key}={value} must lie in [0, 1].")
    if sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"config.schedule fractions {fractions} sum to more than 1.")
    for key in ("init_scale", "final_scale"):
        if not 0 < s[key] <= 1:
            raise ValueError(f"config.schedule.{key}={s[key]} must lie in (0, 1].")
    return tuple(int(round(f * total)) for f in fractions.values())  # type: ignore[return-value]


def tri_stage_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Tri-stage learning rate (Srivastava et al., 2022 fine-tuning; fairseq ``tri_stage``).

    With peak p and stage lengths (w, h, d) from ``tri_stage_steps``: linear warm-up
    from ``p * init_scale`` to p over w steps, hold p for h steps, exponential decay
    ``p * final_scale ** ((step - w - h) / d)`` for d steps, then ``p * final_scale``.
    """
    s = config.schedule
    warmup, hold, decay = tri_stage_steps(config)
    peak, init, final = float(s.peak_learning_rate), float(s.init_scale), float(s.final_scale)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = peak * (init + (1 - init) * step / max(warmup, 1))
        decayed = peak * final ** (jnp.clip(step - warmup - hold, 0, decay) / max(decay, 1))
        after = jnp.where(step < warmup + hold + decay, decayed, peak * final)
        return jnp.where(step < warmup, warm, jnp.where(step < warmup + hold, peak, after))

    return schedule


def warmup_linear_decay_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then linear decay.

    The decay reaches ``peak * final_scale`` at ``config.total_steps`` (wav2vec 2.0 and
    Srivastava et al.: 10k warm-up to 3e-4, then linear to 0 at 300k).
    """
    s = config.schedule
    total, warmup = int(config.total_steps), int(s.warmup_steps)
    if not 0 <= warmup <= total:
        raise ValueError(f"config.schedule.warmup_steps={warmup} must lie in [0, config.total_steps={total}].")
    warm = optax.linear_schedule(0.0, s.peak_learning_rate, max(warmup, 1))
    decay = optax.linear_schedule(s.peak_learning_rate, s.peak_learning_rate * s.final_scale, max(total - warmup, 1))
    return optax.join_schedules([warm, decay], [warmup])


def decay_mask(params: object) -> object:
    """Weight decay applies to matrices and kernels, not to biases, norms or embeddings."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Gradient clipping by global norm followed by AdamW with the schedule above."""
    o = config.optimizer
    if o.name != "adamw":
        raise ValueError(f"config.optimizer.name={o.name!r}: the known optimizer is 'adamw'.")
    schedule = make_schedule(config)
    chain = []
    if o.grad_clip_norm:
        chain.append(optax.clip_by_global_norm(o.grad_clip_norm))
    chain.append(optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=decay_mask))
    return optax.chain(*chain), schedule

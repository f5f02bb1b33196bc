"""Learning-rate schedules and the optimizer, built from ``config.schedule`` and ``config.optimizer``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then linear decay.

    The decay reaches ``peak * final_scale`` at ``config.total_steps`` (wav2vec 2.0 and
    Srivastava et al.: 10k warm-up to 3e-4, then linear to 0 at 300k).
    """
    s = config.schedule
    if s.name != "warmup_linear_decay":
        raise ValueError(f"config.schedule.name={s.name!r}: the known schedule is 'warmup_linear_decay'.")
    total, warmup = int(config.total_steps), int(s.warmup_steps)
    if not 0 <= warmup <= total:
        raise ValueError(f"config.schedule.warmup_steps={warmup} must lie in [0, config.total_steps={total}].")
    warm = optax.linear_schedule(0.0, s.peak_learning_rate, max(warmup, 1))
    decay = optax.linear_schedule(
        s.peak_learning_rate, s.peak_learning_rate * s.final_scale, max(total - warmup, 1)
    )
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
    chain.append(
        optax.adamw(
            schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=decay_mask
        )
    )
    return optax.chain(*chain), schedule

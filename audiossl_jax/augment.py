"""On-device augmentations of the conformer paper's fine-tuning, in their order of use.

1. ``temporal_jitter`` on the waveform [B, N], before the frontend;
2. ``time_mask`` (one SpecAugment time mask, no frequency masks) on logmels [B, T, F];
3. ``mixup`` of logmels with alpha ~ Beta(0.5, 0.5) forced to alpha >= 1 - alpha; the
   caller keeps the first clip's labels.

Every draw is independent per example. Pure functions of (key, arrays).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from audiossl_jax import frontend

Array = jax.Array


def temporal_jitter(rng: Array, waveform: Array, length: Array, max_shift: int) -> tuple[Array, Array]:
    """Shifts each clip by s ~ U{-max_shift..max_shift} samples, filling with zeros.

    waveform [B, N], length [B] -> (waveform [B, N], length [B]). A delay (s > 0)
    prepends s zeros and lengthens the clip (up to N); an advance drops the first -s
    samples and shortens it (to at least 1). Empty rows (length 0) stay empty.
    """
    b, n = waveform.shape
    shift = jax.random.randint(rng, (b,), -max_shift, max_shift + 1)
    src = jnp.arange(n)[None, :] - shift[:, None]
    inside = (src >= 0) & (src < length[:, None])
    out = jnp.where(inside, jnp.take_along_axis(waveform, jnp.clip(src, 0, n - 1), axis=1), 0.0)
    new_length = jnp.where(length > 0, jnp.clip(length + shift, 1, n), 0)
    return out.astype(waveform.dtype), new_length.astype(length.dtype)


def time_mask(rng: Array, logmel: Array, valid: Array, max_fraction: float) -> tuple[Array, Array]:
    """One time mask per clip of w ~ U{0..floor(max_fraction * valid frames)} frames.

    The paper's "up to 2 s per 10 s" is ``max_fraction=0.2``. The mask starts
    uniformly inside the valid frames and is filled with the clip's mean logmel over
    its valid frames (per mel bin). logmel [B, T, F], valid [B, T] ->
    (logmel [B, T, F], mask [B, T] bool).
    """
    b, t, _ = logmel.shape
    width_key, start_key = jax.random.split(rng)
    count = valid.sum(axis=1)
    max_width = jnp.floor(max_fraction * count).astype(jnp.int32)
    width = jnp.floor(jax.random.uniform(width_key, (b,)) * (max_width + 1)).astype(jnp.int32)
    start = jnp.floor(jax.random.uniform(start_key, (b,)) * (count - width + 1)).astype(jnp.int32)
    pos = jnp.arange(t)[None, :]
    mask = (pos >= start[:, None]) & (pos < (start + width)[:, None]) & valid
    fill = frontend.masked_time_mean(logmel, valid, keepdims=True)
    return jnp.where(mask[..., None], fill, logmel), mask


def mixup_weights(rng: Array, batch_size: int, beta: float) -> Array:
    """alpha ~ Beta(beta, beta) per example, folded to max(alpha, 1 - alpha): [B] in [0.5, 1]."""
    alpha = jax.random.beta(rng, beta, beta, (batch_size,))
    return jnp.maximum(alpha, 1.0 - alpha)


def mixup(rng: Array, x: Array, beta: float) -> tuple[Array, Array, Array]:
    """x_i <- alpha_i x_i + (1 - alpha_i) x_partner(i), partners a random permutation.

    x [B, ...] -> (mixed [B, ...], alpha [B], partner [B]). Labels are not mixed: the
    first clip dominates (alpha >= 0.5) and keeps its own.
    """
    alpha_key, perm_key = jax.random.split(rng)
    b = x.shape[0]
    alpha = mixup_weights(alpha_key, b, beta)
    partner = jax.random.permutation(perm_key, b)
    a = alpha.reshape((b,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    return a * x + (1 - a) * x[partner], alpha, partner

"""Layers both encoders build from: parameters kept in float32, kernels with logical axis names.

``dtype`` is the compute dtype (bfloat16 for mixed precision); parameters are always
created and kept in ``PARAM_DTYPE``. Axis names are mapped onto mesh axes by
``audiossl_jax.train.sharding``.

Dropout (``Dropout``, ``attention``) decides two elements with each 32 random bits: one
16-bit half each, dropped when the half is below ``round(rate * 2^16)``. Flax's
``nn.Dropout`` draws a float32 uniform per element; on XLA:CPU the random bits are the
most expensive part of a cf_S training step (docs/benchmarks.md), and halving them makes
the step's dropout about twice as fast. The drop probability is ``rate`` rounded to a
multiple of 2^-16 (0.1 -> 0.0999908), and the survivors are scaled by the inverse of
that probability's complement, so the expectation is preserved exactly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# Flax's LayerNorm epsilon is 1e-6; PyTorch's (and fairseq's) is 1e-5. We follow the
# PyTorch value so that converted checkpoints behave identically.
LN_EPSILON = 1e-5

# Parameters (and so the optimizer state) stay float32 whatever the compute dtype.
PARAM_DTYPE = jnp.float32


def dense(features: int, axes: tuple[str | None, str | None], dtype: jnp.dtype, name: str) -> nn.Dense:
    """A Dense layer ([..., in] -> [..., features]) whose kernel carries the logical axis names ``axes``."""
    return nn.Dense(
        features,
        dtype=dtype,
        param_dtype=PARAM_DTYPE,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes[1],)),
        name=name,
    )


def layer_norm(dtype: jnp.dtype, name: str) -> nn.LayerNorm:
    """LayerNorm over the last axis ([..., D]) with logically named scale and bias."""
    return nn.LayerNorm(
        epsilon=LN_EPSILON,
        dtype=dtype,
        param_dtype=PARAM_DTYPE,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
        name=name,
    )


HALF_BITS = 16


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> tuple[jax.Array, float]:
    """A bool mask of ``shape`` (True = keep) and its exact keep probability.

    Random bits are drawn as uint32 of shape [..., ceil(N/2)] (leading axes intact, so a
    batch-sharded input keeps its sharding) and each word is split into two uint16.
    """
    threshold = round(rate * 2**HALF_BITS)
    last = shape[-1] if shape else 1
    lead = tuple(shape[:-1])
    words = jax.random.bits(key, lead + (-(-last // 2),), jnp.uint32)
    halves = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(lead + (-1,))[..., :last]
    return (halves >= threshold).reshape(shape), 1.0 - threshold / 2**HALF_BITS


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Inverted dropout of ``x`` (any shape) with drop probability ``rate`` (module docstring)."""
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep, keep_prob = keep_mask(key, rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """Element-wise inverted dropout ([...] -> [...]) drawing keys from the ``dropout`` rng stream."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))


def attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    dtype: jnp.dtype | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> jax.Array:
    """Scaled dot-product attention with element-wise dropout on the weights.

    query [B, Tq, H, Dh], key and value [B, Tk, H, Dh], mask broadcastable to [B, H, Tq, Tk]
    -> [B, Tq, H, Dh]. An ``attention_fn`` for ``nn.MultiHeadDotProductAttention``. Unlike
    Flax's default (one dropout mask shared by every example and head), each weight of
    each example and head is dropped independently, as PyTorch's ``MultiheadAttention``
    (the reference conformer's) does.
    """
    weights = nn.dot_product_attention_weights(query, key, mask=mask, dtype=dtype, precision=precision)
    if not deterministic and dropout_rate > 0.0:
        weights = dropout(weights, dropout_rate, dropout_rng)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)

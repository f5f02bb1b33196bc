"""Layers both encoders build from: parameters kept in float32, kernels with logical axis names.

``dtype`` is the compute dtype (bfloat16 for mixed precision); parameters are always
created and kept in ``PARAM_DTYPE``. Axis names are mapped onto mesh axes by
``audiossl_jax.train.sharding``.
"""

from __future__ import annotations

import flax.linen as nn
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

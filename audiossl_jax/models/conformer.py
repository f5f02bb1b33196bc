"""Conformer encoder with the convolution module before self-attention.

Block (Srivastava et al., ICASSP 2022, after Gulati et al., 2020):

    x = x + 1/2 FFN(x)
    x = x + ConvModule(x)          # before attention, no positional encoding
    x = x + MHSA(x)
    x = x + 1/2 FFN(x)
    x = LayerNorm(x)

Every layer respects a padding mask [B, T]: attention never attends to padded frames,
padded frames are zeroed before the depthwise convolution, and the normalisation
inside the convolution module is a per-frame LayerNorm, so padding never enters any
statistic. ``dtype`` is the compute dtype (bfloat16 for mixed precision); parameters
are always created and kept in ``models.layers.PARAM_DTYPE`` (float32). Parameters carry logical axis names (``embed``, ``mlp``, ``heads``, ``kv``,
``conv``) that ``audiossl_jax.train.sharding`` maps onto mesh axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax.models.layers import PARAM_DTYPE, Dropout, attention, dense, layer_norm

Array = jax.Array


class FeedForward(nn.Module):
    """LayerNorm -> Dense(ffn) -> swish -> dropout -> Dense(d) -> dropout; [B, T, D]."""

    ffn_dim: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool) -> Array:
        d = x.shape[-1]
        y = layer_norm(self.dtype, "norm")(x)
        y = dense(self.ffn_dim, ("embed", "mlp"), self.dtype, "in")(y)
        y = nn.swish(y)
        y = Dropout(self.dropout)(y, deterministic=not train)
        y = dense(d, ("mlp", "embed"), self.dtype, "out")(y)
        return Dropout(self.dropout)(y, deterministic=not train)


class DepthwiseConv(nn.Module):
    """'SAME' depthwise convolution over time: x [B, T, D] -> [B, T, D].

    Computed as the sum of K shifted copies of x, each scaled per channel by one tap:
    on XLA:CPU this ran the cf_S shapes' forward and backward 2.4x faster than a grouped
    ``lax.conv`` (benchmarks/profile_step.py, docs/benchmarks.md). The parameters are those of
    ``nn.Conv(D, (K,), feature_group_count=D, padding='SAME')``: kernel [K, 1, D],
    bias [D], same names and initialisers, so checkpoints are interchangeable.
    """

    kernel_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, t, d = self.kernel_size, x.shape[1], x.shape[-1]
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("conv", None, "embed")),
            (k, 1, d),
            PARAM_DTYPE,
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)), (d,), PARAM_DTYPE
        )
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        left = (k - 1) // 2  # XLA's 'SAME' puts the odd padding frame on the right
        padded = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
        out = padded[:, 0:t] * kernel[0, 0]
        for i in range(1, k):
            out = out + padded[:, i : i + t] * kernel[i, 0]
        return out + bias


class ConvModule(nn.Module):
    """LN -> pointwise(2d) -> GLU -> masked depthwise conv -> LN -> swish -> pointwise.

    x: [B, T, D], mask: [B, T] bool -> [B, T, D].
    """

    kernel_size: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: Array, *, train: bool) -> Array:
        d = x.shape[-1]
        y = layer_norm(self.dtype, "norm")(x)
        y = dense(2 * d, ("embed", "mlp"), self.dtype, "pointwise_in")(y)
        y = nn.glu(y, axis=-1)
        y = jnp.where(mask[..., None], y, 0.0)
        y = DepthwiseConv(self.kernel_size, self.dtype, name="depthwise")(y)
        y = layer_norm(self.dtype, "conv_norm")(y)
        y = nn.swish(y)
        y = dense(d, ("mlp", "embed"), self.dtype, "pointwise_out")(y)
        return Dropout(self.dropout)(y, deterministic=not train)


class SelfAttention(nn.Module):
    """LN -> multi-head self-attention over valid frames -> dropout; [B, T, D]."""

    num_heads: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: Array, *, train: bool) -> Array:
        y = layer_norm(self.dtype, "norm")(x)
        attn_mask = nn.make_attention_mask(mask, mask)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dtype=self.dtype,
            param_dtype=PARAM_DTYPE,
            dropout_rate=self.dropout,
            deterministic=not train,
            attention_fn=attention,
            kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(), ("embed", "heads", "kv")),
            out_kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(), ("heads", "kv", "embed")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("heads", "kv")),
            out_bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
            name="mhsa",
        )(y, y, mask=attn_mask)
        return Dropout(self.dropout)(y, deterministic=not train)


class ConformerBlock(nn.Module):
    """One conformer block in the paper's order (conv before attention); [B, T, D]."""

    num_heads: int
    ffn_dim: int
    kernel_size: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: Array, train: bool) -> Array:
        x = x + 0.5 * FeedForward(self.ffn_dim, self.dropout, self.dtype, name="ffn1")(x, train=train)
        x = x + ConvModule(self.kernel_size, self.dropout, self.dtype, name="conv")(x, mask, train=train)
        x = x + SelfAttention(self.num_heads, self.dropout, self.dtype, name="attn")(x, mask, train=train)
        x = x + 0.5 * FeedForward(self.ffn_dim, self.dropout, self.dtype, name="ffn2")(x, train=train)
        return layer_norm(self.dtype, "final_norm")(x)


class Conformer(nn.Module):
    """A stack of conformer blocks; x: [B, T, D], mask: [B, T] bool -> [B, T, D].

    ``kernel_sizes`` gives one depthwise kernel size per block (the paper: 31 for the
    first block and 15 for the rest). Padded output frames are zeroed.
    """

    num_heads: int
    ffn_dim: int
    kernel_sizes: Sequence[int]
    dropout: float
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x: Array, mask: Array, *, train: bool) -> Array:
        block_cls = nn.remat(ConformerBlock, static_argnums=(3,)) if self.remat else ConformerBlock
        for i, kernel_size in enumerate(self.kernel_sizes):
            block = block_cls(self.num_heads, self.ffn_dim, kernel_size, self.dropout, self.dtype, name=f"block{i}")
            x = block(x, mask, train)
        return jnp.where(mask[..., None], x, 0.0)


def kernel_sizes(num_blocks: int, first: int, rest: int) -> tuple[int, ...]:
    """Per-block depthwise kernel sizes: ``first`` for block 0, ``rest`` after."""
    return (first,) + (rest,) * (num_blocks - 1)

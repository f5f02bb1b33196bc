"""The convolutional encoder of Tagliasacchi et al. (2020), its mirrored decoder and MLP heads.

Encoder: log-mel slices [B, N, F] (N=96 frames, F=64 mels) -> embeddings [B, D] (D=128).
Six 3x3 convolutions with [64, 128, 256, 256, 512, 512] channels, each followed by
BatchNorm and ReLU; "max-pooling is used whenever we increase the number of channels in
the next layer": a 2x2 max-pool follows every convolution whose next layer has more
channels (64 -> 128, 128 -> 256, 256 -> 512: after layers 1, 2 and 4, three pools, so
96 x 64 -> 12 x 8 x 512); then a global max-pool over time and frequency and a dense
layer to D.

Decoder: embeddings [B, D] -> [B, N, F, out_channels]. A dense layer to the encoder's
last feature map (12 x 8 x 512), then the encoder's convolutions in reverse order, each
preceded by a 2x nearest-neighbour upsampling where the encoder pooled after it; the
last convolution maps to ``out_channels`` (1 to reconstruct a slice, 2P for skip-gram)
without normalisation or activation.

BatchNorm statistics live in the ``batch_stats`` collection: ``train=True`` normalises
with the statistics of the (global) batch and updates the running averages, which
``train=False`` uses. An optional ``mask`` [B] leaves examples out of the statistics.
Slicing (evaluation, fine-tuning, pretext ``embed``): a clip's log-mel [B, T, F] is cut
into its S = T // N consecutive non-overlapping slices; those entirely inside the clip
are valid (``slice_validity``: a clip shorter than one slice keeps its first, zero-padded)
and only valid ones enter the BatchNorm statistics (``stats_mask``). ``SliceEncoder`` is the
encoder over such slices (fine-tuning); ``SliceModel`` the encoder plus the decoder or head
a pretext task needs.

Parameters carry logical axis names: ``conv_in``, ``conv_out`` (convolution kernels and
BatchNorm), ``embed`` (the embedding), ``mlp`` (hidden units of heads) and ``classes``
(head outputs); ``train/sharding.py`` maps them onto mesh axes (unknown names: replicated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax.models.layers import dense

Array = jax.Array

PAPER_CHANNELS = (64, 128, 256, 256, 512, 512)


def encoder_kwargs(m: Any) -> dict[str, Any]:
    """``CNNEncoder`` fields from ``config.model`` (pretext and fine-tuning models build it alike)."""
    return dict(
        channels=tuple(int(c) for c in m.channels),
        embed_dim=int(m.embed_dim),
        momentum=float(m.batch_norm_momentum),
        epsilon=float(m.batch_norm_epsilon),
    )


def pool_after(channels: Sequence[int]) -> tuple[bool, ...]:
    """Whether a 2x2 max-pool follows each convolution: the next layer has more channels (never after the last)."""
    return tuple(nxt > out for out, nxt in zip(channels, channels[1:])) + (False,)


def downsampling(channels: Sequence[int]) -> int:
    """Factor by which the encoder shrinks time and frequency (2 ** number of pools)."""
    return 2 ** sum(pool_after(channels))


def _conv(features: int, dtype: jnp.dtype, name: str, *, use_bias: bool = False) -> nn.Conv:
    """3x3 'SAME' convolution; no bias where BatchNorm follows (its shift subsumes one)."""
    return nn.Conv(
        features,
        (3, 3),
        padding="SAME",
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), (None, None, "conv_in", "conv_out")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        name=name,
    )


def _batch_norm(momentum: float, epsilon: float, dtype: jnp.dtype, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("conv_out",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        name=name,
    )


def _norm_relu(x: Array, bn: nn.BatchNorm, mask: Array | None, train: bool) -> Array:
    """BatchNorm (statistics over the examples where ``mask`` [B] is True) then ReLU."""
    full = None if mask is None else jnp.broadcast_to(mask[:, None, None, None], x.shape)
    return nn.relu(bn(x, use_running_average=not train, mask=full))


class CNNEncoder(nn.Module):
    """Log-mel slices [B, N, F] -> embeddings [B, embed_dim]."""

    channels: Sequence[int] = PAPER_CHANNELS
    embed_dim: int = 128
    momentum: float = 0.99
    epsilon: float = 1e-3
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, *, train: bool, mask: Array | None = None) -> Array:
        y = x[..., None].astype(self.dtype)  # [B, N, F, 1]
        for i, (features, pool) in enumerate(zip(self.channels, pool_after(self.channels))):
            y = _conv(features, self.dtype, f"conv{i}")(y)
            y = _norm_relu(y, _batch_norm(self.momentum, self.epsilon, self.dtype, f"bn{i}"), mask, train)
            if pool:
                y = nn.max_pool(y, (2, 2), strides=(2, 2))
        y = jnp.max(y, axis=(1, 2))  # global max-pool: [B, C]
        return dense(self.embed_dim, ("conv_out", "embed"), self.dtype, "embedding")(y)


class CNNDecoder(nn.Module):
    """Embeddings [B, D] -> reconstructed slices [B, N, F, out_channels], mirroring CNNEncoder."""

    out_channels: int
    slice_frames: int
    num_mels: int
    channels: Sequence[int] = PAPER_CHANNELS
    momentum: float = 0.99
    epsilon: float = 1e-3
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z: Array, *, train: bool, mask: Array | None = None) -> Array:
        factor = downsampling(self.channels)
        t, f, c = self.slice_frames // factor, self.num_mels // factor, self.channels[-1]
        y = dense(t * f * c, ("embed", "conv_out"), self.dtype, "project")(z.astype(self.dtype))
        y = y.reshape(z.shape[0], t, f, c)
        pools = pool_after(self.channels)
        for i in reversed(range(len(self.channels))):
            if pools[i]:
                y = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2)  # nearest-neighbour upsampling
            if i > 0:
                y = _conv(self.channels[i - 1], self.dtype, f"conv{i}")(y)
                y = _norm_relu(y, _batch_norm(self.momentum, self.epsilon, self.dtype, f"bn{i}"), mask, train)
        return _conv(self.out_channels, self.dtype, "conv0", use_bias=True)(y).astype(jnp.float32)


class MLPHead(nn.Module):
    """Embeddings [B, D] -> outputs [B, outputs]: Dense(hidden) + ReLU (when hidden > 0), Dense."""

    outputs: int
    hidden: int = 0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = x.astype(self.dtype)
        if self.hidden:
            x = nn.relu(dense(self.hidden, ("embed", "mlp"), self.dtype, "hidden")(x))
        axes = ("mlp", "classes") if self.hidden else ("embed", "classes")
        return dense(self.outputs, axes, self.dtype, "out")(x).astype(jnp.float32)


def stats_mask(usable: Array) -> Array:
    """Examples [B] that enter BatchNorm statistics: the usable ones (all when none is)."""
    return usable | ~jnp.any(usable)


def slice_validity(valid: Array, num_slices: int, slice_frames: int) -> Array:
    """Which consecutive slices of a clip embed it: valid frames [B] -> [B, S] bool.

    A slice is valid when it lies entirely inside the clip's valid frames. A non-empty
    clip shorter than one slice (most spoken digits are under 975 ms) keeps its first
    slice, zero-padded, so that every clip has an embedding.
    """
    index = jnp.arange(num_slices)
    whole = (index + 1) * slice_frames <= valid[:, None]
    return whole | ((index == 0) & (valid[:, None] > 0))


def consecutive_slices(logmel: Array, valid: Array, slice_frames: int) -> tuple[Array, Array]:
    """A clip cut into its S = T // slice_frames consecutive non-overlapping slices.

    logmel [B, T, F], valid frames [B] -> slices [B * S, slice_frames, F] and their
    validity [B, S] (``slice_validity``). A crop shorter than one slice is an error.
    """
    b, t, f = logmel.shape
    s = t // slice_frames
    if s == 0:
        raise ValueError(
            f"clips of {t} frames are shorter than one slice (config.task.slice_frames="
            f"{slice_frames}); use longer crops (config.data.crop_seconds)."
        )
    return logmel[:, : s * slice_frames].reshape(b * s, slice_frames, f), slice_validity(valid, s, slice_frames)


class SliceEncoder(CNNEncoder):
    """The CNN encoder over consecutive non-overlapping slices of ``slice_frames`` frames."""

    slice_frames: int = 96

    def encode(self, logmel: Array, frame_mask: Array, *, train: bool) -> tuple[Array, Array]:
        """logmel [B, T, F], frame mask [B, T] -> slice embeddings [B, S, D] float32, validity [B, S].

        S = T // slice_frames; validity as ``slice_validity`` (whole slices inside
        the clip, or the first, zero-padded, of a clip shorter than one slice). Training
        BatchNorm statistics come from the valid slices (all when none is).
        """
        x, valid = consecutive_slices(logmel, frame_mask.sum(axis=1), self.slice_frames)
        b, s = valid.shape
        emb = self(x, train=train, mask=stats_mask(valid.reshape(-1)))
        return emb.reshape(b, s, -1).astype(jnp.float32), valid


class SliceModel(nn.Module):
    """The pretext tasks' model: the CNN encoder, and optionally a mirrored decoder and/or an MLP head."""

    channels: tuple[int, ...]
    embed_dim: int
    momentum: float
    epsilon: float
    slice_frames: int
    num_mels: int
    decoder_outputs: int = 0
    head_outputs: int = 0
    head_hidden: int = 0
    dtype: Any = jnp.float32

    def setup(self) -> None:
        norm = dict(momentum=self.momentum, epsilon=self.epsilon, dtype=self.dtype)
        self.encoder = CNNEncoder(self.channels, self.embed_dim, **norm)
        if self.decoder_outputs:
            self.decoder = CNNDecoder(self.decoder_outputs, self.slice_frames, self.num_mels, self.channels, **norm)
        if self.head_outputs:
            self.head = MLPHead(self.head_outputs, self.head_hidden, self.dtype)

    def encode(self, x: Array, *, train: bool, mask: Array | None = None) -> Array:
        """Slices [B, N, F] -> embeddings [B, D] float32."""
        return self.encoder(x, train=train, mask=mask).astype(jnp.float32)

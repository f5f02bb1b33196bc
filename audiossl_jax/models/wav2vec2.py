"""wav2vec 2.0 on logmels with a conformer context network (Srivastava et al., 2022).

    logmel [B, T, F] --stack R frames--> [B, T/R, R*F] --LN, Dense--> latents Z [B, T', D]
    Z --(mask embedding at masked steps), Conformer, Dense--> context C [B, T', E]
    Z --Dense--> targets Q [B, T', E]        (from the *unmasked* latents)

The feature projection is the context network's input linear layer (as wav2vec 2.0's
``post_extract_proj``), so the context network is linear -> conformer -> linear. With
E = 256 this gives 18.43M parameters for cf_S and 88.26M for cf_L, against the paper's
18.4M and 88.1M (the conformer blocks alone are 18.23M and 87.67M).

The contrastive loss that compares C with Q lives in ``audiossl_jax.tasks.wav2vec2``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax.models.conformer import PARAM_DTYPE, Conformer, dense, kernel_sizes, layer_norm

Array = jax.Array


def stacked_mask(frame_mask: Array, stack: int) -> Array:
    """Validity of stacked steps: [B, T] -> [B, T // R]; a step needs all R frames."""
    b, t = frame_mask.shape
    steps = t // stack
    return frame_mask[:, : steps * stack].reshape(b, steps, stack).all(axis=-1)


def stack_frames(x: Array, frame_mask: Array, stack: int) -> tuple[Array, Array]:
    """Stacks ``stack`` consecutive frames: [B, T, F] -> [B, T // R, R * F].

    Trailing frames that do not fill a whole step are dropped. Returns (stacked,
    mask [B, T // R]); see ``stacked_mask``.
    """
    b, t, f = x.shape
    steps = t // stack
    x = x[:, : steps * stack].reshape(b, steps, stack * f)
    return x, stacked_mask(frame_mask, stack)


class Wav2Vec2Conformer(nn.Module):
    """Feature encoder, context network and target projection; see module docstring."""

    stack: int
    model_dim: int
    final_dim: int
    num_heads: int
    ffn_dim: int
    kernel_sizes: Sequence[int]
    dropout: float
    feature_dropout: float
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    @classmethod
    def from_config(cls, m: Any, dtype: Any) -> "Wav2Vec2Conformer":
        """The model of ``config.model`` (pre-training and fine-tuning build it alike, so checkpoints load)."""
        return cls(stack=m.stack, model_dim=m.model_dim, final_dim=m.final_dim, num_heads=m.num_heads,
                   ffn_dim=m.ffn_dim, kernel_sizes=kernel_sizes(m.num_blocks, m.first_kernel_size, m.kernel_size),
                   dropout=m.dropout, feature_dropout=m.feature_dropout, dtype=jnp.dtype(dtype), remat=m.remat)

    def setup(self) -> None:
        self.feature_norm = layer_norm(self.dtype, "feature_norm")
        self.feature_proj = dense(self.model_dim, ("stacked", "embed"), self.dtype, "feature_proj")
        self.mask_embedding = self.param(
            "mask_embedding",
            nn.with_logical_partitioning(nn.initializers.uniform(1.0), ("embed",)),
            (self.model_dim,),
            PARAM_DTYPE,
        )
        self.conformer = Conformer(
            self.num_heads,
            self.ffn_dim,
            tuple(self.kernel_sizes),
            self.dropout,
            self.dtype,
            self.remat,
            name="conformer",
        )
        self.context_out = dense(self.final_dim, ("mlp", "embed"), self.dtype, "context_out")
        self.target_proj = dense(self.final_dim, ("embed", "mlp"), self.dtype, "target_proj")
        self.dropout_layer = nn.Dropout(self.feature_dropout)

    def latents(self, logmel: Array, frame_mask: Array) -> tuple[Array, Array]:
        """logmel [B, T, F], frame_mask [B, T] -> latents Z [B, T', D], mask [B, T']."""
        x, mask = stack_frames(logmel, frame_mask, self.stack)
        z = self.feature_proj(self.feature_norm(x))
        return z, mask

    def context(self, z: Array, mask: Array, *, train: bool) -> Array:
        """Latents [B, T', D] (masking already applied) -> encoder output [B, T', D]."""
        x = self.dropout_layer(z, deterministic=not train)
        return self.conformer(x, mask, train=train)

    def encode(self, logmel: Array, frame_mask: Array, *, train: bool = False) -> tuple[Array, Array]:
        """Downstream embeddings: logmel [B, T, F] -> frames [B, T', D] and mask [B, T']."""
        z, mask = self.latents(logmel, frame_mask)
        return self.context(z, mask, train=train), mask

    def __call__(
        self, logmel: Array, frame_mask: Array, time_mask: Array, *, train: bool
    ) -> tuple[Array, Array]:
        """Pre-training forward pass.

        Args:
          logmel: [B, T, F] log-mel features.
          frame_mask: [B, T] bool, valid frames.
          time_mask: [B, T'] bool, latent steps to replace by the mask embedding.
          train: enables dropout.

        Returns:
          context [B, T', E] and targets [B, T', E] (from unmasked latents); the latent
          validity mask is ``stacked_mask(frame_mask, stack)``.
        """
        z, mask = self.latents(logmel, frame_mask)
        targets = self.target_proj(z)
        masked = jnp.where(time_mask[..., None], self.mask_embedding.astype(z.dtype), z)
        context = self.context_out(self.context(masked, mask, train=train))
        return context, targets

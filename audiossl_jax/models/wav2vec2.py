"""wav2vec 2.0 on logmels with a conformer context network (Srivastava et al., 2022).

The paper's Section 2.2, module by module:

    feature encoder:  logmel [B, T, F] --stack R=4 frames--> [B, T/R, R*F] --LN, Dense--> Z [B, T', L]
    masking:          Z --(learned mask embedding at masked steps)--> Z~ [B, T', L]
    context encoder:  Z~ --Dense(L -> D)--> conformer blocks [B, T', D] --Dense(D -> L)--> C [B, T', L]

("the time stacking layer stacks every R=4 consecutive frames into a single frame; then
a linear layer converts the stacked spectrogram into latent representation vectors Z
... The context encoder consists of a linear layer, multiple conformer blocks and
another linear layer at the end"). The contrastive targets are the unmasked latents
z_t themselves (eq. 1 compares c_t with z_t), so there is no target projection. With
L = 256 this counts 18.43M parameters for cf_S (D=256), 88.13M for cf_L (D=768), 58.91M
and 146.57M for cf_L with 8 and 20 blocks: the paper's 18.4M, 88.1M, 58.9M, 146.6M.

Two additions the paper does not name (docs/fidelity.md, "our choice"): a LayerNorm on
the stacked frames before the linear layer (wav2vec 2.0's feature ``layer_norm``) and
dropout on the latents entering the context encoder (wav2vec 2.0's ``dropout_input``).

Downstream tasks use C, the context encoder's output ("the conformer model can generate
an embedding vector (the context representation) for each frame"); ``encode`` gives it.
The contrastive loss that compares C with Z lives in ``audiossl_jax.tasks.wav2vec2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax.models.conformer import Conformer, kernel_sizes
from audiossl_jax.models.layers import PARAM_DTYPE, Dropout, dense, layer_norm

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
    """Feature encoder (stacking, linear -> Z) and context encoder (linear, conformer, linear).

    ``latent_dim`` is L, the width of Z and of the context output C; ``model_dim`` is D,
    the conformer's width.
    """

    stack: int
    latent_dim: int
    model_dim: int
    num_heads: int
    ffn_dim: int
    kernel_sizes: Sequence[int]
    dropout: float
    feature_dropout: float
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    @classmethod
    def from_config(cls, m: Any, dtype: Any) -> Wav2Vec2Conformer:
        """The model of ``config.model`` (pre-training and fine-tuning build it alike, so checkpoints load)."""
        return cls(
            stack=m.stack,
            latent_dim=m.latent_dim,
            model_dim=m.model_dim,
            num_heads=m.num_heads,
            ffn_dim=m.ffn_dim,
            kernel_sizes=kernel_sizes(m.num_blocks, m.first_kernel_size, m.kernel_size),
            dropout=m.dropout,
            feature_dropout=m.feature_dropout,
            dtype=jnp.dtype(dtype),
            remat=m.remat,
        )

    def setup(self) -> None:
        self.feature_norm = layer_norm(self.dtype, "feature_norm")
        self.feature_proj = dense(self.latent_dim, ("stacked", "latent"), self.dtype, "feature_proj")
        self.mask_embedding = self.param(
            "mask_embedding",
            nn.with_logical_partitioning(nn.initializers.uniform(1.0), ("latent",)),
            (self.latent_dim,),
            PARAM_DTYPE,
        )
        self.context_in = dense(self.model_dim, ("latent", "embed"), self.dtype, "context_in")
        self.conformer = Conformer(
            self.num_heads,
            self.ffn_dim,
            tuple(self.kernel_sizes),
            self.dropout,
            self.dtype,
            self.remat,
            name="conformer",
        )
        self.context_out = dense(self.latent_dim, ("embed", "latent"), self.dtype, "context_out")
        self.dropout_layer = Dropout(self.feature_dropout)

    def latents(self, logmel: Array, frame_mask: Array) -> tuple[Array, Array]:
        """Feature encoder: logmel [B, T, F], frame_mask [B, T] -> Z [B, T', L], mask [B, T']."""
        x, mask = stack_frames(logmel, frame_mask, self.stack)
        return self.feature_proj(self.feature_norm(x)), mask

    def context(self, z: Array, mask: Array, *, train: bool) -> Array:
        """Context encoder: Z [B, T', L] (masking already applied) -> C [B, T', L].

        Padded steps of C are zero (the bias of the last linear layer is not added there).
        """
        x = self.dropout_layer(z, deterministic=not train)
        x = self.conformer(self.context_in(x), mask, train=train)
        return jnp.where(mask[..., None], self.context_out(x), 0.0)

    def encode(self, logmel: Array, frame_mask: Array, *, train: bool = False) -> tuple[Array, Array]:
        """Downstream embeddings, the context representation: logmel [B, T, F] -> C [B, T', L], mask [B, T']."""
        z, mask = self.latents(logmel, frame_mask)
        return self.context(z, mask, train=train), mask

    def __call__(self, logmel: Array, frame_mask: Array, time_mask: Array, *, train: bool) -> tuple[Array, Array]:
        """Pre-training forward pass.

        Args:
          logmel: [B, T, F] log-mel features.
          frame_mask: [B, T] bool, valid frames.
          time_mask: [B, T'] bool, latent steps to replace by the mask embedding.
          train: enables dropout.

        Returns:
          context C [B, T', L] and the unmasked latents Z [B, T', L], the targets of
          eq. (1); the latent validity mask is ``stacked_mask(frame_mask, stack)``.
        """
        z, mask = self.latents(logmel, frame_mask)
        masked = jnp.where(time_mask[..., None], self.mask_embedding.astype(z.dtype), z)
        return self.context(masked, mask, train=train), z

"""The fine-tuning model: an encoder, dropout on its frames, and the paper's heads.

Srivastava et al. (2022): "For AudioSet, we first add a linear classification layer with
the sigmoid activation to predict the frame-level probabilities ..., then add a linear
softmax pooling layer ... For all other downstream tasks, we first average-pool the
embeddings across all the frames, then stack a linear classification layer". The encoder
gives frames [B, T', D] and their validity [B, T'] (conformer steps, or CNN slices); the
head is chosen by ``pooling``:

* ``'linear_softmax'`` (multi-label only): frame-level sigmoid outputs p [B, T', C],
  pooled over valid frames by y_c = sum_t p_tc^2 / sum_t p_tc (p clamped to
  [eps, 1 - eps]);
* ``'mean'``: masked mean over valid frames [B, D], then a linear layer [B, C]; a sigmoid
  for multi-label tasks, none (logits) for single-label ones.

``freeze_encoder`` makes the encoder's output a constant for the gradient and keeps
BatchNorm on its running averages (the frozen arm of Tagliasacchi et al., 2020).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax import frontend as frontend_lib
from audiossl_jax.models.cnn import SliceEncoder
from audiossl_jax.models.layers import Dropout, dense
from audiossl_jax.models.wav2vec2 import Wav2Vec2Conformer

Array = jax.Array

# task.pooling: the paper's AudioSet head, and its head of every other task.
POOLINGS = ("linear_softmax", "mean")


def linear_softmax_pool(p: Array, valid: Array, eps: float) -> Array:
    """sum_t p^2 / sum_t p over valid frames: p [B, T, C] in (0, 1), valid [B, T] -> [B, C]."""
    p = jnp.clip(p, eps, 1.0 - eps)
    w = valid.astype(p.dtype)[..., None]
    return (p * p * w).sum(axis=1) / jnp.maximum((p * w).sum(axis=1), eps)


class Classifier(nn.Module):
    """Encoder -> dropout -> head. logmel [B, T, F], frame mask [B, T] -> scores [B, C].

    ``pooling`` one of ``POOLINGS`` (module docstring). Scores are probabilities
    (multi-label) or logits (single-label).
    """

    encoder: Wav2Vec2Conformer | SliceEncoder
    num_classes: int
    multi_label: bool
    pooling: str
    output_dropout: float
    pool_eps: float
    dtype: jnp.dtype = jnp.float32
    freeze_encoder: bool = False

    @nn.compact
    def __call__(self, logmel: Array, frame_mask: Array, *, train: bool) -> Array:
        frames, valid = self.encoder.encode(logmel, frame_mask, train=train and not self.freeze_encoder)
        if self.freeze_encoder:
            frames = jax.lax.stop_gradient(frames)
        frames = Dropout(self.output_dropout)(frames, deterministic=not train)
        head = dense(self.num_classes, ("embed", None), self.dtype, "head")
        if self.pooling == "linear_softmax":
            p = jax.nn.sigmoid(head(frames).astype(jnp.float32))
            return linear_softmax_pool(p, valid, self.pool_eps)
        logits = head(frontend_lib.masked_time_mean(frames, valid)).astype(jnp.float32)
        return jax.nn.sigmoid(logits) if self.multi_label else logits

    def embed(self, logmel: Array, frame_mask: Array) -> tuple[Array, Array]:
        """The encoder's frames [B, T', D] and validity [B, T'] (no dropout)."""
        return self.encoder.encode(logmel, frame_mask, train=False)

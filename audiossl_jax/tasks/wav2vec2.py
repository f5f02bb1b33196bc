"""wav2vec 2.0 contrastive pre-training on logmels (Srivastava et al., 2022, eq. 1).

For a masked step t with context c_t, its own unmasked latent z_t as the positive and
K distractors z~ drawn from the other masked steps of the same clip:

    L_t = -log( exp(sim(c_t, z_t) / kappa) / sum_{z' in {z_t} + distractors} exp(sim(c_t, z') / kappa) )

with sim the cosine similarity and kappa the temperature; the loss is the mean of L_t
over masked steps. All shapes are static: the masked steps of each clip are gathered
into [B, M] slots (M = ceil(mask_prob * T')) with a validity mask, so clips of
different lengths mask different numbers of steps without recompilation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from audiossl_jax import frontend as frontend_lib
from audiossl_jax.models.wav2vec2 import Wav2Vec2Conformer, stacked_mask
from audiossl_jax.tasks.base import Batch, Metrics, Task, unit_norm

Array = jax.Array

# Logit given to a distractor identical to its positive: large and negative, but
# finite so that softmax never sees -inf (NaN gradients) or overflows in low precision.
IDENTICAL_DISTRACTOR_LOGIT = -1e4


def span_mask(rng: Array, valid: Array, mask_prob: float, span: int) -> Array:
    """Masks round(mask_prob * L) valid steps of each clip in spans of ``span`` steps.

    The valid steps of a clip (a prefix of length L) are cut into chunks of ``span``
    steps at a random offset; chunks are taken in random order until the clip's quota
    is met, the last one trimmed to fit. Adjacent chosen chunks merge into longer
    spans, as overlapping spans do in wav2vec 2.0.

    Args:
      rng: PRNG key.
      valid: [B, T] bool, a prefix of True per row.
      mask_prob: fraction of valid steps to mask.
      span: span length.

    Returns:
      [B, T] bool mask; never True on invalid steps.
    """
    b, t = valid.shape
    num_chunks = t // span + 2
    offset_key, order_key = jax.random.split(rng)
    offset = jax.random.randint(offset_key, (b, 1), 0, span)
    pos = jnp.arange(t)[None, :]
    chunk = (pos + offset) // span  # [B, T]
    chunk_start = jnp.maximum(chunk * span - offset, 0)
    within = pos - chunk_start  # position inside its chunk
    rows = jnp.arange(b)[:, None]
    sizes = jnp.zeros((b, num_chunks), jnp.int32).at[rows, chunk].add(valid.astype(jnp.int32))
    scores = jax.random.uniform(order_key, (b, num_chunks))
    scores = jnp.where(sizes > 0, scores, 2.0)
    order = jnp.argsort(scores, axis=-1)
    sorted_sizes = jnp.take_along_axis(sizes, order, axis=-1)
    before = jnp.cumsum(sorted_sizes, axis=-1) - sorted_sizes
    quota = jnp.round(mask_prob * valid.sum(axis=-1)).astype(jnp.int32)[:, None]
    take_sorted = jnp.clip(quota - before, 0, sorted_sizes)
    take = jnp.zeros_like(sizes).at[rows, order].set(take_sorted)
    return valid & (within < jnp.take_along_axis(take, chunk, axis=-1))


def masked_slots(time_mask: Array, num_slots: int) -> tuple[Array, Array]:
    """Positions of masked steps, gathered in order: [B, T] -> idx [B, M], valid [B, M]."""
    t = time_mask.shape[1]
    pos = jnp.arange(t)[None, :]
    keys = jnp.where(time_mask, pos, pos + t)
    idx = jnp.argsort(keys, axis=-1)[:, :num_slots]
    count = time_mask.sum(axis=-1, keepdims=True)
    return idx, jnp.arange(num_slots)[None, :] < count


def sample_distractors(rng: Array, count: Array, num_slots: int, num_negatives: int) -> Array:
    """Uniform distractor slots that never equal the positive's own slot.

    For slot i of a clip with n masked steps, draws from the n - 1 other slots: an
    integer u in [0, n - 1) becomes u + (u >= i). Returns [B, M, K] int32 slot indices,
    meaningful only where n >= 2 and i < n.
    """
    b = count.shape[0]
    high = jnp.maximum(count - 1, 1)[:, None, None]
    u = jax.random.randint(rng, (b, num_slots, num_negatives), 0, high)
    own = jnp.arange(num_slots)[None, :, None]
    return u + (u >= own).astype(u.dtype)


def contrastive_logits(context: Array, positives: Array, negatives: Array, temperature: float) -> tuple[Array, Array]:
    """Cosine-similarity logits with the positive first.

    context, positives: [B, M, E]; negatives: [B, M, K, E] -> logits [B, M, 1 + K]
    in float32, and [B, M, K] bool marking distractors identical to their positive
    (their logit is set to ``IDENTICAL_DISTRACTOR_LOGIT``).
    """
    context = context.astype(jnp.float32)
    positives = positives.astype(jnp.float32)
    negatives = negatives.astype(jnp.float32)
    candidates = jnp.concatenate([positives[:, :, None], negatives], axis=2)
    c, q = unit_norm(context), unit_norm(candidates)
    logits = jnp.einsum("bme,bmke->bmk", c, q) / temperature
    identical = jnp.all(negatives == positives[:, :, None], axis=-1)
    neg_logits = jnp.where(identical, IDENTICAL_DISTRACTOR_LOGIT, logits[..., 1:])
    return jnp.concatenate([logits[..., :1], neg_logits], axis=-1), identical


class Wav2Vec2Task(Task):
    """Conformer wav2vec 2.0 pre-training; configured by ``config.model`` and ``config.task``."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.frontend = frontend_lib.FrontendConfig.from_config(config.frontend)
        m = config.model
        self.model = Wav2Vec2Conformer.from_config(m, config.compute_dtype)
        self.frames_per_step = int(m.stack)
        t = config.task
        self.mask_prob = t.mask_prob
        self.mask_span = t.mask_span
        self.num_negatives = t.num_negatives
        self.temperature = t.temperature

    def features(self, batch: Batch) -> tuple[Array, Array]:
        """waveform [B, N], length [B] -> logmel [B, T, F], frame mask [B, T]."""
        return frontend_lib.clip_logmel(batch["waveform"], batch["length"], self.frontend)

    def num_steps(self, num_frames: int) -> int:
        """Latent steps T' for T frames."""
        return num_frames // self.model.stack

    def init(self, rng: Array, batch: Batch) -> dict[str, Any]:
        logmel, frame_mask = self.features(batch)
        time_mask = jnp.zeros((logmel.shape[0], self.num_steps(logmel.shape[1])), bool)
        return self.model.init(rng, logmel, frame_mask, time_mask, train=False)

    def embed(self, variables: Mapping[str, Any], batch: Batch) -> tuple[Array, Array, Array]:
        logmel, frame_mask = self.features(batch)
        frames, mask = self.model.apply(variables, logmel, frame_mask, method=self.model.encode)
        return frames, mask, frontend_lib.group_times(frames.shape[1], self.frontend, self.frames_per_step)

    def loss(
        self, variables: Mapping[str, Any], batch: Batch, rng: Array, *, train: bool
    ) -> tuple[Array, tuple[Metrics, dict[str, Any]]]:
        mask_key, neg_key, dropout_key = jax.random.split(rng, 3)
        logmel, frame_mask = self.features(batch)
        b, t = logmel.shape[0], self.num_steps(logmel.shape[1])
        valid = stacked_mask(frame_mask, self.model.stack)
        time_mask = span_mask(mask_key, valid, self.mask_prob, self.mask_span)
        context, targets = self.model.apply(
            variables, logmel, frame_mask, time_mask, train=train, rngs={"dropout": dropout_key}
        )
        num_slots = max(1, math.ceil(self.mask_prob * t))
        idx, slot_valid = masked_slots(time_mask, num_slots)
        count = time_mask.sum(axis=-1)
        c = jnp.take_along_axis(context, idx[..., None], axis=1)  # [B, M, L]
        q = jnp.take_along_axis(targets, idx[..., None], axis=1)  # [B, M, L], the latents z_t
        neg_slots = sample_distractors(neg_key, count, num_slots, self.num_negatives)
        negatives = q[jnp.arange(b)[:, None, None], neg_slots]  # [B, M, K, E]
        logits, identical = contrastive_logits(c, q, negatives, self.temperature)
        has_negatives = slot_valid & (count[:, None] >= 2)
        weight = has_negatives.astype(jnp.float32)
        denom = jnp.maximum(weight.sum(), 1.0)
        nll = -jax.nn.log_softmax(logits, axis=-1)[..., 0]
        loss = (nll * weight).sum() / denom
        correct = (jnp.argmax(logits, axis=-1) == 0).astype(jnp.float32)
        cos = logits * self.temperature
        neg_weight = weight[..., None] * (~identical)
        metrics = {
            "loss": loss,
            "accuracy": (correct * weight).sum() / denom,
            "cos_positive": (cos[..., 0] * weight).sum() / denom,
            "cos_negative": (cos[..., 1:] * neg_weight).sum() / jnp.maximum(neg_weight.sum(), 1.0),
            "identical_distractors": (identical * weight[..., None]).sum()
            / jnp.maximum(weight.sum() * self.num_negatives, 1.0),
            "mask_fraction": time_mask.sum() / jnp.maximum(valid.sum(), 1),
        }
        return loss, (metrics, {})

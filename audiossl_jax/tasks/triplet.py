"""TripletLoss (Tagliasacchi et al., 2020, after Jansen et al., 2018).

Each example draws an anchor and a positive slice at independent uniform positions
inside its own clip, and a negative slice at a uniform position inside another clip
of the same global batch: clip ``(i + k_i) mod B`` with k_i uniform in 1..B-1, so it
is never the anchor's own clip. Embeddings are L2-normalised and the loss is

    max(0, |a - p|^2 - |a - n|^2 + margin)

with ``config.task.margin``. An example is usable when both clips hold a slice.
``accuracy`` is the share of triplets with |a - p| < |a - n|.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from audiossl_jax.models.cnn import SliceModel
from audiossl_jax.tasks.base import unit_norm
from audiossl_jax.tasks.slice_task import (
    Array,
    Metrics,
    Sample,
    SliceTask,
    cut_slices,
    masked_mean,
    require,
    window_starts,
)


class TripletTask(SliceTask):
    """Anchor/positive from one clip, negative from another; hinge on squared distances."""

    def __init__(self, config: ml_collections.ConfigDict):
        require(config.task.margin > 0, "task.margin", config.task.margin, "must be > 0.")
        require(
            config.batch_size >= 2,
            "batch_size",
            config.batch_size,
            "must be >= 2: negatives come from another clip of the batch.",
        )
        self.margin = float(config.task.margin)
        super().__init__(config)

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slices [B, 3, N, F] (anchor, positive, negative), starts [B, 3], negative_clip [B], usable [B]."""
        a_key, p_key, n_key, clip_key = jax.random.split(rng, 4)
        b = valid.shape[0]
        shift = jax.random.randint(clip_key, (b,), 1, max(b, 2))
        other = (jnp.arange(b) + shift) % b
        a_start, usable = window_starts(a_key, valid, self.span)
        p_start, _ = window_starts(p_key, valid, self.span)
        n_start, other_usable = window_starts(n_key, valid[other], self.span)
        own = cut_slices(logmel, jnp.stack([a_start, p_start], axis=1), self.slice_frames)
        negative = cut_slices(logmel[other], n_start[:, None], self.slice_frames)
        return {
            "slices": jnp.concatenate([own, negative], axis=1),
            "starts": jnp.stack([a_start, p_start, n_start], axis=1),
            "negative_clip": other,
            "usable": usable & other_usable & (other != jnp.arange(b)),
        }

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable = sample["usable"]
        emb = unit_norm(self.encode_slices(model, sample["slices"], usable, train))
        a, p, n = emb[:, 0], emb[:, 1], emb[:, 2]
        d_ap = jnp.sum(jnp.square(a - p), axis=-1)
        d_an = jnp.sum(jnp.square(a - n), axis=-1)
        hinge = jax.nn.relu(d_ap - d_an + self.margin)
        return masked_mean(hinge, usable), {"accuracy": masked_mean((d_ap < d_an).astype(jnp.float32), usable)}

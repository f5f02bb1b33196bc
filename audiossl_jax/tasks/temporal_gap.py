"""TemporalGap (Tagliasacchi et al., 2020): predict the normalised time gap between two slices.

Each example draws two slices of N frames from its clip: a distance d (frames between
their starts) uniform over ``0 .. V - N`` (V: the clip's valid frames), then the earlier
start uniform over ``0 .. V - N - d``; the later one starts d frames after it. "We do not
impose a temporal order between the two slices": each example presents the pair in a
random order (earlier first or later first, probability 1/2 each). The target is
the normalised gap g = d / (T - N) in [0, 1], with T the frames of the crop, so g is the
same function of time for every clip (a short clip only reaches smaller gaps).

The two embeddings are concatenated ([B, 2D]) and fed to an MLP with
``config.task.head_hidden`` (64) ReLU units and one output, the logit of the predicted
gap p = sigmoid(logit). The loss is the cross-entropy between the true and predicted
gap, ``-g log p - (1 - g) log(1 - p)``, minimal at p = g; since it does not reach 0
for 0 < g < 1, ``loss_excess`` (the loss minus the entropy of g, a KL divergence) and
``gap_abs_error`` = |p - g| are logged too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from audiossl_jax.models.cnn import SliceModel
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


def binary_entropy(p: Array) -> Array:
    """-p log p - (1 - p) log(1 - p), with 0 log 0 = 0."""

    def xlogx(x: Array) -> Array:
        return jnp.where(x > 0, x * jnp.log(jnp.maximum(x, 1e-30)), 0.0)

    return -xlogx(p) - xlogx(1.0 - p)


class TemporalGapTask(SliceTask):
    """Two slices of one clip at a uniform random distance; cross-entropy on the normalised gap."""

    head_outputs = 1

    def __init__(self, config: ml_collections.ConfigDict):
        require(
            config.task.head_hidden >= 1, "task.head_hidden", config.task.head_hidden, "must be >= 1 (the paper: 64)."
        )
        self.head_hidden = int(config.task.head_hidden)
        super().__init__(config)
        self.max_gap = self.crop_frames - self.slice_frames
        require(
            self.max_gap > 0,
            "data.crop_seconds",
            config.data.crop_seconds,
            f"gives {self.crop_frames} frames: no room for a gap between two slices of "
            f"{self.slice_frames} frames; use longer crops.",
        )

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slices [B, 2, N, F] (in random order), starts [B, 2], gap [B] in [0, 1], usable [B]."""
        gap_key, start_key, order_key = jax.random.split(rng, 3)
        # The gap is uniform over the room a slice leaves; the earlier slice then starts
        # uniformly where both slices fit (the clip shortened by the gap).
        distance, usable = window_starts(gap_key, valid, self.slice_frames)
        first, _ = window_starts(start_key, valid - distance, self.slice_frames)
        swap = jax.random.bernoulli(order_key, 0.5, first.shape)
        starts = jnp.stack([jnp.where(swap, first + distance, first), jnp.where(swap, first, first + distance)], axis=1)
        return {
            "slices": cut_slices(logmel, starts, self.slice_frames),
            "starts": starts,
            "gap": distance.astype(jnp.float32) / self.max_gap,
            "usable": usable,
        }

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable, gap = sample["usable"], sample["gap"]
        emb = self.encode_slices(model, sample["slices"], usable, train)  # [B, 2, D]
        logit = model.head(emb.reshape(emb.shape[0], -1))[:, 0]
        ce = optax.sigmoid_binary_cross_entropy(logit, gap)
        metrics = {
            "loss_excess": masked_mean(ce - binary_entropy(gap), usable),
            "gap_abs_error": masked_mean(jnp.abs(jax.nn.sigmoid(logit) - gap), usable),
        }
        return masked_mean(ce, usable), metrics

"""ArrowOfTime (Tagliasacchi et al., 2020): is a slice played forward or time-reversed?

Each example draws one slice of N frames inside its clip and reverses it along time
with probability 1/2 (independently per example); label 1 = reversed. The embedding
goes through an MLP with ``config.task.head_hidden`` ReLU units to one logit; the loss
is the binary cross-entropy, and ``accuracy`` is logged.
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


class ArrowOfTimeTask(SliceTask):
    """Forward vs time-reversed slices, binary cross-entropy."""

    head_outputs = 1

    def __init__(self, config: ml_collections.ConfigDict):
        require(
            config.task.head_hidden >= 0,
            "task.head_hidden",
            config.task.head_hidden,
            "must be >= 0 (0: a linear head).",
        )
        self.head_hidden = int(config.task.head_hidden)
        super().__init__(config)

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slice [B, N, F] (reversed where ``reversed``), start [B], reversed [B] bool, usable [B]."""
        start_key, flip_key = jax.random.split(rng)
        start, usable = window_starts(start_key, valid, self.span)
        forward = cut_slices(logmel, start[:, None], self.slice_frames)[:, 0]
        flip = jax.random.bernoulli(flip_key, 0.5, valid.shape)
        x = jnp.where(flip[:, None, None], forward[:, ::-1], forward)
        return {"slice": x, "start": start, "reversed": flip, "usable": usable}

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable, target = sample["usable"], sample["reversed"]
        emb = self.encode_slices(model, sample["slice"][:, None], usable, train)[:, 0]
        logit = model.head(emb)[:, 0]
        ce = optax.sigmoid_binary_cross_entropy(logit, target.astype(jnp.float32))
        correct = ((logit > 0) == target).astype(jnp.float32)
        return masked_mean(ce, usable), {"accuracy": masked_mean(correct, usable)}

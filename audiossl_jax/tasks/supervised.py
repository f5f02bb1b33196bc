"""Supervised pre-training (Tagliasacchi et al., 2020): the encoder trained on clip labels.

Each example draws one slice of N frames inside its clip; a linear layer (or an MLP
with ``config.task.head_hidden`` ReLU units) maps the embedding to
``config.task.num_classes`` logits; the loss is the softmax cross-entropy with the
clip's integer label. Examples whose label lies outside ``0 .. num_classes - 1``
(unlabelled rows carry -1) get weight 0; ``labelled_fraction`` reports their share.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax

from audiossl_jax.tasks.slice_task import (
    Array, Metrics, Sample, SliceModel, SliceTask, cut_slices, masked_mean, require, window_starts,
)


class SupervisedTask(SliceTask):
    """Slice classification with the clip's label, softmax cross-entropy."""

    def __init__(self, config: ml_collections.ConfigDict):
        t = config.task
        require(t.num_classes >= 2, "task.num_classes", t.num_classes, "must be >= 2 (the synthetic data: 12).")
        require(t.head_hidden >= 0, "task.head_hidden", t.head_hidden, "must be >= 0 (0: a linear head).")
        self.head_outputs = int(t.num_classes)
        self.head_hidden = int(t.head_hidden)
        super().__init__(config)

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slice [B, N, F], label [B], labelled [B] bool, start [B], usable [B]."""
        start, usable = window_starts(rng, valid, self.span)
        labelled = (label >= 0) & (label < self.head_outputs)
        return {
            "slice": cut_slices(logmel, start[:, None], self.slice_frames)[:, 0],
            "label": jnp.clip(label, 0, self.head_outputs - 1),
            "labelled": labelled,
            "start": start,
            "usable": usable & labelled,
        }

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable = sample["usable"]
        emb = self.encode_slices(model, sample["slice"][:, None], usable, train)[:, 0]
        logits = model.head(emb)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, sample["label"])
        correct = (jnp.argmax(logits, axis=-1) == sample["label"]).astype(jnp.float32)
        metrics = {
            "accuracy": masked_mean(correct, usable),
            "labelled_fraction": jnp.mean(sample["labelled"].astype(jnp.float32)),
        }
        return masked_mean(ce, usable), metrics

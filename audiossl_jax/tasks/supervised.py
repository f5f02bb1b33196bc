"""Supervised pre-training (Tagliasacchi et al., 2020): the encoder trained on clip labels.

Each example draws one slice of N frames inside its clip; a linear layer (or an MLP
with ``config.task.head_hidden`` ReLU units) maps the embedding to
``config.task.num_classes`` logits. Two kinds of labels:

* single-label (``task.multi_label=False``): integer labels [B], softmax cross-entropy;
  examples whose label lies outside ``0 .. num_classes - 1`` (unlabelled rows carry -1)
  get weight 0 and ``labelled_fraction`` reports their share; ``accuracy`` is logged;
* multi-label (``task.multi_label=True``, e.g. AudioSet's 527 classes as in the paper):
  multi-hot labels [B, C] float32 (``data.multi_label=True``), sigmoid binary
  cross-entropy averaged over the classes; ``top1_precision`` (the top-scoring class is
  one of the clip's labels) is logged.
"""

from __future__ import annotations

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


class SupervisedTask(SliceTask):
    """Slice classification with the clip's label(s): softmax or sigmoid cross-entropy."""

    def __init__(self, config: ml_collections.ConfigDict):
        t = config.task
        require(t.num_classes >= 2, "task.num_classes", t.num_classes, "must be >= 2 (AudioSet: 527).")
        require(t.head_hidden >= 0, "task.head_hidden", t.head_hidden, "must be >= 0 (0: a linear head).")
        self.multi_label = bool(t.get("multi_label", False))
        require(
            bool(config.data.get("multi_label", False)) == self.multi_label,
            "data.multi_label",
            config.data.get("multi_label", False),
            f"must equal config.task.multi_label={self.multi_label} (multi-hot labels need both).",
        )
        self.head_outputs = int(t.num_classes)
        self.head_hidden = int(t.head_hidden)
        super().__init__(config)

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slice [B, N, F], label [B] int32 or [B, C] float32, labelled [B] bool, start [B], usable [B]."""
        start, usable = window_starts(rng, valid, self.span)
        if self.multi_label:
            if label.ndim != 2 or label.shape[1] != self.head_outputs:
                raise ValueError(
                    f"config.task.multi_label=True needs multi-hot labels [B, {self.head_outputs}] "
                    f"(config.task.num_classes), got shape {label.shape}; set config.data.multi_label=True "
                    "on a multi-label dataset."
                )
            labelled, label = jnp.ones(label.shape[:1], bool), label.astype(jnp.float32)
        else:
            labelled = (label >= 0) & (label < self.head_outputs)
            label = jnp.clip(label, 0, self.head_outputs - 1)
        return {
            "slice": cut_slices(logmel, start[:, None], self.slice_frames)[:, 0],
            "label": label,
            "labelled": labelled,
            "start": start,
            "usable": usable & labelled,
        }

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable = sample["usable"]
        emb = self.encode_slices(model, sample["slice"][:, None], usable, train)[:, 0]
        logits = model.head(emb)
        top = jnp.argmax(logits, axis=-1)
        if self.multi_label:
            ce = optax.sigmoid_binary_cross_entropy(logits, sample["label"]).mean(axis=-1)
            hit = jnp.take_along_axis(sample["label"], top[:, None], axis=-1)[:, 0] > 0
            return masked_mean(ce, usable), {"top1_precision": masked_mean(hit.astype(jnp.float32), usable)}
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, sample["label"])
        metrics = {
            "accuracy": masked_mean((top == sample["label"]).astype(jnp.float32), usable),
            "labelled_fraction": jnp.mean(sample["labelled"].astype(jnp.float32)),
        }
        return masked_mean(ce, usable), metrics

"""Fine-tuning a pretrained encoder on a labelled task (Srivastava et al., 2022 recipe).

The encoder is the conformer (``config.model`` of a wav2vec 2.0 run) or the CNN of
Tagliasacchi et al. (2020) (``config.model.channels`` of a pretext run): the CNN runs
over the clip's consecutive non-overlapping slices of ``task.slice_frames`` frames
(those entirely inside the clip are valid; a clip shorter than one slice keeps its
first, zero-padded), BatchNorm normalising with the statistics of
the valid slices of the batch in training and with its running averages in evaluation.
The whole encoder updates. The model is ``models.classifier.Classifier``: after the encoder
(frames [B, T', D]: conformer steps or slices) and dropout, the head of ``task.pooling``
(``'linear_softmax'``: the paper's AudioSet head; ``'mean'``: its head of every other task).

Multi-label scores are probabilities trained with binary cross-entropy (mean over
classes); single-label scores are logits trained with softmax cross-entropy.

Training augments on the device (``audiossl_jax.augment``) in the paper's order: temporal
jitter, one time mask, mixup (labels of the first clip). With ``task.consistency`` the
batch is augmented twice and ``consistency_weight`` x the symmetric KL divergence between
the two predictions is added to the mean of their two classification losses.
``task.pretrained_workdir`` names the checkpoint whose encoder ``load_pretrained``
copies in (parameters and, for the CNN, BatchNorm ``batch_stats``); None trains the same
model from scratch. ``task.freeze_encoder`` trains the head only (the frozen arm of
Tagliasacchi et al., 2020): the encoder's output is a constant for the gradient and
BatchNorm keeps its running averages, so with no weight decay its weights never move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiossl_jax import augment, config_lib
from audiossl_jax import frontend as frontend_lib
from audiossl_jax.models.classifier import Classifier
from audiossl_jax.models.cnn import SliceEncoder, encoder_kwargs
from audiossl_jax.models.wav2vec2 import Wav2Vec2Conformer
from audiossl_jax.tasks.base import Batch, Metrics, Task

Array = jax.Array


def bernoulli_kl(p: Array, q: Array) -> Array:
    """KL(Bernoulli(p) || Bernoulli(q)) per element; p, q in (0, 1)."""
    return p * (jnp.log(p) - jnp.log(q)) + (1 - p) * (jnp.log1p(-p) - jnp.log1p(-q))


def symmetric_kl(a: Array, b: Array, multi_label: bool, eps: float) -> Array:
    """KL(a||b) + KL(b||a) per clip [B] between two predictions of the same clips.

    Multi-label (a, b probabilities [B, C]): the mean over classes of the Bernoulli KLs, as
    the BCE it is added to is a mean over classes. Single-label (a, b logits [B, C]): the
    categorical KL of their softmaxes (our reading: the paper states the term for
    AudioSet's sigmoid "event probabilities").
    """
    if multi_label:
        a, b = jnp.clip(a, eps, 1 - eps), jnp.clip(b, eps, 1 - eps)
        return (bernoulli_kl(a, b) + bernoulli_kl(b, a)).mean(axis=-1)
    la, lb = jax.nn.log_softmax(a), jax.nn.log_softmax(b)
    return ((jnp.exp(la) - jnp.exp(lb)) * (la - lb)).sum(axis=-1)


class ClassificationTask(Task):
    """Fine-tuning task; configured by ``config.model`` (the encoder) and ``config.task``."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.frontend = frontend_lib.FrontendConfig.from_config(config.frontend)
        m, t = config.model, config.task
        dtype = jnp.dtype(config.compute_dtype)
        self.cnn = config_lib.is_cnn(config)
        if self.cnn:
            encoder = SliceEncoder(**encoder_kwargs(m), dtype=dtype, slice_frames=int(t.slice_frames))
            self.frames_per_step = int(t.slice_frames)
        else:
            encoder = Wav2Vec2Conformer.from_config(m, dtype)
            self.frames_per_step = int(m.stack)
        self.model = Classifier(
            encoder,
            t.num_classes,
            t.multi_label,
            t.pooling,
            t.output_dropout,
            t.pool_eps,
            dtype,
            freeze_encoder=bool(t.get("freeze_encoder", False)),
        )
        self._t = t

    @property
    def multi_label(self) -> bool:
        """Whether labels are multi-hot (scores are per-class probabilities) rather than one class."""
        return bool(self._t.multi_label)

    @property
    def num_classes(self) -> int:
        """C, the width of the scores [B, C]."""
        return int(self._t.num_classes)

    def features(self, waveform: Array, length: Array) -> tuple[Array, Array]:
        """waveform [B, N], length [B] -> logmel [B, T, F], frame mask [B, T] (samples past length zeroed)."""
        return frontend_lib.clip_logmel(waveform, length, self.frontend)

    def init(self, rng: Array, batch: Batch) -> dict[str, Any]:
        logmel, frame_mask = self.features(batch["waveform"], batch["length"])
        return self.model.init(rng, logmel, frame_mask, train=False)

    def targets(self, batch: Batch) -> Array:
        """[B, C] targets: ``label`` itself when multi-hot [B, C], else one-hot of ``label`` [B]."""
        label = batch["label"]
        if label.ndim == 2:
            return label.astype(jnp.float32)
        return jax.nn.one_hot(label, self._t.num_classes, dtype=jnp.float32)

    def scores(
        self, variables: Mapping[str, Any], batch: Batch, rng: Array, *, train: bool
    ) -> tuple[Array, dict[str, Any]]:
        """Scores [B, C] of the (when training, augmented) batch and the updated ``batch_stats``
        (CNN encoder in training; else empty)."""
        jitter_key, mask_key, mix_key, dropout_key = jax.random.split(rng, 4)
        wave, length = batch["waveform"], batch["length"]
        if train and self._t.jitter_samples:
            wave, length = augment.temporal_jitter(jitter_key, wave, length, self._t.jitter_samples)
        logmel, frame_mask = self.features(wave, length)
        if train and self._t.time_mask_max_fraction:
            logmel, _ = augment.time_mask(mask_key, logmel, frame_mask, self._t.time_mask_max_fraction)
        if train and self._t.mixup:
            logmel, _, _ = augment.mixup(mix_key, logmel, self._t.mixup_beta)
        if train and self.cnn:
            scores, updates = self.model.apply(
                variables, logmel, frame_mask, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
            )
            return scores, dict(updates)
        return self.model.apply(variables, logmel, frame_mask, train=train, rngs={"dropout": dropout_key}), {}

    def classification_loss(self, scores: Array, y: Array) -> Array:
        """Per-clip loss [B]: BCE (mean over classes) on probabilities, or softmax cross-entropy on logits."""
        if self._t.multi_label:
            p = jnp.clip(scores, self._t.pool_eps, 1 - self._t.pool_eps)
            return -(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)).mean(axis=-1)
        return -(y * jax.nn.log_softmax(scores)).sum(axis=-1)

    def loss(
        self, variables: Mapping[str, Any], batch: Batch, rng: Array, *, train: bool
    ) -> tuple[Array, tuple[Metrics, dict[str, Any]]]:
        y = self.targets(batch)
        weight = (batch["length"] > 0).astype(jnp.float32)  # padding rows of eval batches
        denom = jnp.maximum(weight.sum(), 1.0)
        first_key, second_key = jax.random.split(rng)
        scores, new_state = self.scores(variables, batch, first_key, train=train)
        per_clip = self.classification_loss(scores, y)
        metrics: Metrics = {}
        if train and self._t.consistency:
            second, new_state = self.scores(variables, batch, second_key, train=train)
            kl = symmetric_kl(scores, second, self._t.multi_label, self._t.pool_eps)
            per_clip = 0.5 * (per_clip + self.classification_loss(second, y)) + self._t.consistency_weight * kl
            metrics["symmetric_kl"] = (kl * weight).sum() / denom
        loss = (per_clip * weight).sum() / denom
        correct = (jnp.argmax(scores, axis=-1) == jnp.argmax(y, axis=-1)).astype(jnp.float32)
        metrics.update(loss=loss, accuracy=(correct * weight).sum() / denom)
        return loss, (metrics, new_state)

    def predict(self, variables: Mapping[str, Any], batch: Batch) -> Array:
        """Evaluation scores [B, C]: probabilities (sigmoid for multi-label, else softmax), no augmentation."""
        scores, _ = self.scores(variables, batch, jax.random.PRNGKey(0), train=False)
        return scores if self._t.multi_label else jax.nn.softmax(scores)

    def embed(self, variables: Mapping[str, Any], batch: Batch) -> tuple[Array, Array, Array]:
        logmel, frame_mask = self.features(batch["waveform"], batch["length"])
        frames, mask = self.model.apply(variables, logmel, frame_mask, method=Classifier.embed)
        return frames, mask, frontend_lib.group_times(frames.shape[1], self.frontend, self.frames_per_step)

    def load_pretrained(
        self, params: Any, model_state: dict[str, Any], source: Mapping[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """Copies the encoder of ``source`` (the variables of ``task.pretrained_workdir``) into
        ``params`` and ``model_state``.

        Any run with the same encoder kind and sizes: a wav2vec 2.0 or fine-tuned run for
        the conformer; a pretext (or fine-tuned) CNN run, whose BatchNorm ``batch_stats``
        come along. The head keeps its random initialisation.
        """
        workdir = self._t.get("pretrained_workdir", None)
        target = {"params": params, **model_state}
        loaded = {}
        for collection, tree in target.items():
            if "encoder" not in tree:
                loaded[collection] = tree
                continue
            held = source.get(collection, {})
            held = held.get("encoder", held)  # pretext CNN and fine-tuned runs nest their encoder
            encoder = {}
            for key, subtree in tree["encoder"].items():
                if key not in held:
                    raise ValueError(
                        f"task.pretrained_workdir={workdir!r}: the checkpoint has no encoder {collection} "
                        f"{key!r} (it holds {sorted(held)}); is it a run of the same encoder as config.model "
                        f"({'CNN' if self.cnn else 'conformer'})?"
                    )
                encoder[key] = _same_shapes(subtree, held[key], f"{workdir}: {collection}/encoder/{key}")
            loaded[collection] = {**tree, "encoder": encoder}
        return loaded.pop("params"), loaded


def _same_shapes(target: Any, source: Any, where: str) -> Any:
    """``source`` after checking it has ``target``'s tree structure and leaf shapes."""
    t_leaves, t_def = jax.tree_util.tree_flatten_with_path(target)
    s_leaves, s_def = jax.tree_util.tree_flatten_with_path(source)
    if t_def != s_def:
        raise ValueError(f"{where}: the pretrained parameters have another structure than config.model gives")
    for (path, a), (_, b) in zip(t_leaves, s_leaves):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{where}{jax.tree_util.keystr(path)}: pretrained shape {np.shape(b)} != "
                f"{np.shape(a)} from config.model; use the pretrained run's model sizes"
            )
    return jax.tree.map(np.asarray, source)

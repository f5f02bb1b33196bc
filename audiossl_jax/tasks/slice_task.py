"""What the pretext tasks of Tagliasacchi et al. (2020) share: slices cut on the device.

Every task computes the log-mel of the whole waveform crop inside the jitted step
([B, N] -> [B, T, F], 10 ms hop), then cuts slices of ``config.task.slice_frames``
frames (96 = 975 ms in the paper) with static shapes: per-example start frames [B, K]
drawn from the step key, and one ``dynamic_slice`` per slice under ``vmap``.

Validity. A clip holds ``length // hop_length`` valid frames V (its zero padding is not
audio). A task draws one window of ``span`` frames per example (for example five
slices and four gaps for Audio2Vec CBoW), uniformly among the positions that lie
entirely inside the valid frames. A clip shorter than the span cannot hold the window:
it is *unusable* for that step, its loss weight is 0 and it is left out of the BatchNorm
statistics; the metric ``usable_fraction`` reports the share of usable examples. A
crop shorter than the span is a configuration error (raised when the task is built).

The model of every task is a ``models.cnn.SliceModel``: the paper's CNN encoder plus the
decoder or head the task needs. ``Task.embed`` runs the encoder (running BatchNorm
averages) over consecutive non-overlapping slices of the clip: those entirely inside
it, or its first, zero-padded slice when the clip is shorter than one.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from audiossl_jax import frontend as frontend_lib
from audiossl_jax.config_lib import require
from audiossl_jax.models.cnn import SliceModel, consecutive_slices, downsampling, encoder_kwargs, stats_mask
from audiossl_jax.tasks.base import Batch, Metrics, Task

Array = jax.Array
Sample = dict[str, Array]


def valid_frames(length: Array, num_frames: int, cfg: frontend_lib.FrontendConfig) -> Array:
    """Valid frames per clip: length [B] samples -> [B] int32, at most ``num_frames``."""
    return jnp.minimum(length // cfg.hop_length, num_frames).astype(jnp.int32)


def window_starts(rng: Array, valid: Array, span: int) -> tuple[Array, Array]:
    """Uniform start frames of a window of ``span`` frames inside each clip's valid frames.

    valid [B] -> starts [B] int32 in [0, valid - span], usable [B] bool (valid >= span;
    unusable clips get start 0).
    """
    room = valid - span
    u = jax.random.uniform(rng, valid.shape)
    start = jnp.floor(u * (jnp.maximum(room, 0) + 1)).astype(jnp.int32)
    return jnp.clip(start, 0, jnp.maximum(room, 0)), room >= 0


def cut_slices(logmel: Array, starts: Array, slice_frames: int) -> Array:
    """logmel [B, T, F], starts [B, K] -> slices [B, K, slice_frames, F] (static shapes)."""

    def one(x: Array, start: Array) -> Array:
        return jax.lax.dynamic_slice_in_dim(x, start, slice_frames, axis=0)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, 0))(logmel, starts)


def masked_mean(values: Array, weight: Array) -> Array:
    """Mean of values [B] over the examples where weight [B] is True (0 when none is)."""
    w = weight.astype(jnp.float32)
    return jnp.sum(values * w) / jnp.maximum(jnp.sum(w), 1.0)


class SliceTask(Task):
    """A pretext task on log-mel slices; subclasses define ``sample`` and ``objective`` (and ``span`` when wider than a slice)."""

    decoder_outputs: int = 0
    head_outputs: int = 0
    head_hidden: int = 0

    def __init__(self, config: ml_collections.ConfigDict):
        self.frontend = frontend_lib.FrontendConfig.from_config(config.frontend)
        m, t = config.model, config.task
        channels = tuple(int(c) for c in m.channels)
        require(
            len(channels) >= 1 and all(c > 0 for c in channels),
            "model.channels",
            m.channels,
            "must be a non-empty list of positive channel counts (the paper: [64, 128, 256, 256, 512, 512]).",
        )
        require(m.embed_dim > 0, "model.embed_dim", m.embed_dim, "must be positive (the paper: 128).")
        require(
            0 <= m.batch_norm_momentum < 1, "model.batch_norm_momentum", m.batch_norm_momentum, "must lie in [0, 1)."
        )
        require(m.batch_norm_epsilon > 0, "model.batch_norm_epsilon", m.batch_norm_epsilon, "must be > 0.")
        factor = downsampling(channels)
        self.slice_frames = int(t.slice_frames)
        self.frames_per_step = self.slice_frames
        require(
            self.slice_frames > 0 and self.slice_frames % factor == 0,
            "task.slice_frames",
            t.slice_frames,
            f"must be a positive multiple of {factor} (the encoder pools {int(math.log2(factor))} times); the paper uses 96.",
        )
        if self.decoder_outputs:
            require(
                self.frontend.n_mels % factor == 0,
                "frontend.n_mels",
                self.frontend.n_mels,
                f"must be a multiple of {factor} for the decoder to mirror the encoder's pooling.",
            )
        self.crop_frames = frontend_lib.crop_frames(config.data.crop_seconds, self.frontend)
        self.dtype = jnp.dtype(config.compute_dtype)
        self.model = SliceModel(
            **encoder_kwargs(m),
            slice_frames=self.slice_frames,
            num_mels=self.frontend.n_mels,
            decoder_outputs=self.decoder_outputs,
            head_outputs=self.head_outputs,
            head_hidden=self.head_hidden,
            dtype=self.dtype,
        )
        self.check_span(config)

    def check_span(self, config: ml_collections.ConfigDict) -> None:
        """Rejects crops too short to hold one window of ``self.span`` frames."""
        need = self.span * self.frontend.hop_length / self.frontend.sample_rate
        require(
            self.crop_frames >= self.span,
            "data.crop_seconds",
            config.data.crop_seconds,
            f"gives {self.crop_frames} frames but config.task.name={config.task.name!r} needs windows of "
            f"{self.span} frames; use crops of at least {need:.3f} s.",
        )

    @property
    def span(self) -> int:
        """Frames of the window each example must hold (default: one slice)."""
        return self.slice_frames

    @abc.abstractmethod
    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """Slices and targets of one step: logmel [B, T, F], valid [B], label [B] -> arrays [B, ...].

        Always holds ``usable`` [B] bool.
        """

    @abc.abstractmethod
    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        """Runs inside ``model.apply``: (scalar loss, metrics)."""

    def features(self, batch: Batch) -> tuple[Array, Array]:
        """waveform [B, N], length [B] -> logmel [B, T, F], valid frames [B].

        Samples past each clip's length are zeroed before the frontend.
        """
        logmel, _ = frontend_lib.clip_logmel(batch["waveform"], batch["length"], self.frontend)
        return logmel, valid_frames(batch["length"], logmel.shape[1], self.frontend)

    def _sample_batch(self, batch: Batch, rng: Array) -> Sample:
        logmel, valid = self.features(batch)
        return self.sample(rng, logmel, valid, batch["label"])

    def init(self, rng: Array, batch: Batch) -> dict[str, Any]:
        sample_key, param_key = jax.random.split(rng)
        sample = self._sample_batch(batch, sample_key)
        return self.model.init(param_key, sample, method=lambda m, s: self.objective(m, s, False))

    def loss(
        self, variables: Mapping[str, Any], batch: Batch, rng: Array, *, train: bool
    ) -> tuple[Array, tuple[Metrics, dict[str, Any]]]:
        sample = self._sample_batch(batch, rng)

        def run(m: SliceModel, s: Sample) -> tuple[Array, Metrics]:
            return self.objective(m, s, train)

        if train:
            (loss, metrics), updates = self.model.apply(variables, sample, method=run, mutable=["batch_stats"])
            new_state = dict(updates)
        else:
            loss, metrics = self.model.apply(variables, sample, method=run)
            new_state = {}
        metrics = dict(metrics, loss=loss, usable_fraction=jnp.mean(sample["usable"].astype(jnp.float32)))
        return loss, (metrics, new_state)

    def encode_slices(self, model: SliceModel, slices: Array, usable: Array, train: bool) -> Array:
        """slices [B, K, N, F] -> embeddings [B, K, D]; BatchNorm statistics over usable examples."""
        b, k = slices.shape[:2]
        mask = jnp.repeat(stats_mask(usable), k)
        emb = model.encode(slices.reshape(b * k, *slices.shape[2:]), train=train, mask=mask)
        return emb.reshape(b, k, -1)

    def embed(self, variables: Mapping[str, Any], batch: Batch) -> tuple[Array, Array, Array]:
        """Encoder over consecutive non-overlapping slices: frames [B, S, D], validity [B, S], centres [S] s.

        S = T // slice_frames; validity as ``models.cnn.slice_validity`` (whole slices inside the clip;
        the first, zero-padded, for a clip shorter than one slice).
        """
        logmel, valid = self.features(batch)
        x, validity = consecutive_slices(logmel, valid, self.slice_frames)
        b, s = validity.shape
        emb = self.model.apply(variables, x, train=False, method=SliceModel.encode).reshape(b, s, -1)
        return emb, validity, frontend_lib.group_times(s, self.frontend, self.slice_frames)

"""Reconstruction tasks: Audio2Vec CBoW and skip-gram, and the AutoEncoder (Tagliasacchi et al., 2020).

Each example draws one window of 2P + 1 slices of N frames separated by gaps of G
frames (P=2, G=2, N=96: 488 frames, 4.88 s); slice k starts at ``start + k (N + G)``.

* CBoW: the 2P context slices (time order) are encoded and their embeddings
  concatenated, z = [z(-P), ..., z(-1), z(1), ..., z(P)] ([B, 2P D]: 512-d for P=2,
  D=128, as the paper says), and the decoder reconstructs the middle slice; loss = MSE.
* Skip-gram: the middle slice is encoded and the decoder's 2P output channels
  reconstruct the context slices in time order (channel j = context slice j, i.e.
  offsets -P..-1, +1..+P); loss = MSE averaged over the 2P slices.
* AutoEncoder: one slice is encoded and reconstructed; loss = MSE.

Targets are log-mel values (the frontend's: natural log of mel-weighted magnitude + 1e-6).
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from audiossl_jax.models.cnn import SliceModel, stats_mask
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


def _mse(recon: Array, target: Array) -> Array:
    """Per-example mean squared error: [B, ...] -> [B]."""
    return jnp.mean(jnp.square(recon - target).reshape(recon.shape[0], -1), axis=-1)


class Audio2VecTask(SliceTask):
    """Audio2Vec, CBoW (``skipgram=False``) or skip-gram (``skipgram=True``)."""

    def __init__(self, config: ml_collections.ConfigDict, *, skipgram: bool):
        t = config.task
        require(t.context_slices >= 1, "task.context_slices", t.context_slices, "must be >= 1 (the paper: P=2).")
        require(t.gap_frames >= 0, "task.gap_frames", t.gap_frames, "must be >= 0 (the paper: G=2).")
        self.skipgram = skipgram
        self.context = int(t.context_slices)
        self.gap = int(t.gap_frames)
        self.decoder_outputs = 2 * self.context if skipgram else 1
        super().__init__(config)

    @property
    def span(self) -> int:
        return (2 * self.context + 1) * self.slice_frames + 2 * self.context * self.gap

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """context [B, 2P, N, F] in time order, middle [B, N, F], starts [B, 2P + 1], usable [B]."""
        start, usable = window_starts(rng, valid, self.span)
        starts = start[:, None] + jnp.arange(2 * self.context + 1) * (self.slice_frames + self.gap)
        slices = cut_slices(logmel, starts, self.slice_frames)
        p = self.context
        context = jnp.concatenate([slices[:, :p], slices[:, p + 1 :]], axis=1)
        return {"context": context, "middle": slices[:, p], "starts": starts, "usable": usable}

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable = sample["usable"]
        mask = stats_mask(usable)
        if self.skipgram:
            emb = self.encode_slices(model, sample["middle"][:, None], usable, train)[:, 0]
            recon = jnp.moveaxis(model.decoder(emb, train=train, mask=mask), -1, 1)  # [B, 2P, N, F]
            err = _mse(recon, sample["context"])
        else:
            emb = self.encode_slices(model, sample["context"], usable, train)  # [B, 2P, D], time order
            emb = emb.reshape(emb.shape[0], -1)  # concatenated: [B, 2P D]
            recon = model.decoder(emb, train=train, mask=mask)[..., 0]  # [B, N, F]
            err = _mse(recon, sample["middle"])
        return masked_mean(err, usable), {}


class AutoEncoderTask(SliceTask):
    """Encode one slice and reconstruct it through the mirrored decoder; MSE."""

    decoder_outputs = 1

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)

    def sample(self, rng: Array, logmel: Array, valid: Array, label: Array) -> Sample:
        """slice [B, N, F], start [B], usable [B]."""
        start, usable = window_starts(rng, valid, self.span)
        return {"slice": cut_slices(logmel, start[:, None], self.slice_frames)[:, 0], "start": start, "usable": usable}

    def objective(self, model: SliceModel, sample: Sample, train: bool) -> tuple[Array, Metrics]:
        usable = sample["usable"]
        emb = self.encode_slices(model, sample["slice"][:, None], usable, train)[:, 0]
        recon = model.decoder(emb, train=train, mask=stats_mask(usable))[..., 0]
        err = _mse(recon, sample["slice"])
        return masked_mean(err, usable), {}


def cbow(config: ml_collections.ConfigDict) -> Audio2VecTask:
    return Audio2VecTask(config, skipgram=False)


def skipgram(config: ml_collections.ConfigDict) -> Audio2VecTask:
    return Audio2VecTask(config, skipgram=True)

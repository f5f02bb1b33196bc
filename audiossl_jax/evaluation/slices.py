"""Slice-level evaluation of Tagliasacchi et al. (2020), section IV.

"During both training and evaluation we extract equal-length slices uniformly at random
from the original sample and assign the corresponding label to all of the extracted
slices." Training gets its random slices from the pipeline's random crop of
``crop_seconds`` = the slice length; evaluation here draws ``per_clip`` slices of every
evaluation clip, scores each with the fine-tuned (or frozen-encoder) classifier and reports

* ``accuracy``: over all slices (the paper's number);
* ``clip_accuracy``: per clip, the argmax of the mean of its slices' scores.

How many slices per clip the paper draws is not said: ``per_clip`` is our choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from audiossl_jax.data import pipeline
from audiossl_jax.train import sharding


def slice_starts(lengths: np.ndarray, slice_samples: int, per_clip: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform start samples [N, per_clip] in 0 .. max(length - slice_samples, 0) of clips of ``lengths`` [N]."""
    room = np.maximum(np.asarray(lengths, np.int64) - slice_samples, 0)
    return np.floor(rng.uniform(size=(len(room), per_clip)) * (room[:, None] + 1)).astype(np.int64)


def slice_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """scores [N, K, C] of K slices per clip, labels [N] -> slice ``accuracy`` and ``clip_accuracy``."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    slice_hit = scores.argmax(axis=-1) == labels[:, None]
    clip_hit = scores.mean(axis=1).argmax(axis=-1) == labels
    return {"accuracy": float(slice_hit.mean()), "clip_accuracy": float(clip_hit.mean())}


def cut(
    waveform: np.ndarray, length: np.ndarray, starts: np.ndarray, slice_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clips [B, n] of ``length`` [B], starts [B, K] -> slices [B * K, slice_samples] zero-padded, lengths [B * K]."""
    b, k = starts.shape
    padded = np.pad(waveform, ((0, 0), (0, slice_samples)))
    index = starts[..., None] + np.arange(slice_samples)  # [B, K, S]
    out = np.take_along_axis(padded[:, None, :], index, axis=-1).reshape(b * k, slice_samples)
    lens = np.clip(length[:, None] - starts, 0, slice_samples).reshape(-1)
    out[np.arange(slice_samples)[None, :] >= lens[:, None]] = 0.0
    return out.astype(np.float32), lens.astype(np.int32)


def evaluate_slices(
    task: Any,
    variables: Mapping[str, Any],
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    slice_seconds: float,
    per_clip: int,
    seed: int,
    batch_size: int,
    mesh: jax.sharding.Mesh,
) -> dict[str, float]:
    """``per_clip`` random slices of every clip of ``split`` (read whole up to ``data_cfg.crop_seconds``,
    centre-cropped), scored by ``task.predict``; returns ``slice_metrics`` plus ``num_slices``."""
    slice_samples = int(round(slice_seconds * data_cfg.sample_rate))
    predict = jax.jit(task.predict)
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for batch in pipeline.make_eval_iterator(data_cfg, split, batch_size=batch_size):
        rows = batch["valid"]
        if not rows.any():
            continue
        label = batch["label"][rows]
        if label.ndim != 1 or label.min() < 0:
            raise ValueError(
                f"dataset {data_cfg.name!r} split {split!r}: slice evaluation needs single-label, "
                "labelled data (set config.data.label_key; multi-label tasks use config.recipe='clips')"
            )
        starts = slice_starts(batch["length"][rows], slice_samples, per_clip, rng)
        wave, lens = cut(batch["waveform"][rows], batch["length"][rows], starts, slice_samples)
        out = []
        for i in range(0, len(lens), batch_size):
            chunk = {
                "waveform": wave[i : i + batch_size],
                "length": lens[i : i + batch_size],
                "label": np.repeat(label, per_clip)[i : i + batch_size],
            }
            real = len(chunk["length"])
            chunk = {k: np.pad(v, [(0, batch_size - real)] + [(0, 0)] * (v.ndim - 1)) for k, v in chunk.items()}
            out.append(np.asarray(jax.device_get(predict(variables, sharding.global_batch(chunk, mesh))))[:real])
        scores.append(np.concatenate(out).reshape(len(label), per_clip, -1))
        labels.append(label)
    if not labels:
        raise ValueError(f"dataset {data_cfg.name!r} split {split!r} has no examples")
    score = np.concatenate(scores)
    return dict(slice_metrics(score, np.concatenate(labels)), num_slices=int(score.shape[0] * per_clip))

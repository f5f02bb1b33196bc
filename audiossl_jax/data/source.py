"""Random-access sources: example i -> (mono float32 audio [n], label), for index-based pipelines.

A `Source` holds one split. Labels are class-index lists per example; `label_array`
turns a list into the batch form: int32 [] (single-label, -1 unlabelled) or a float32
multi-hot [C] (multi-label). `read_crop` reads one fixed-length crop, decoding only
that window of a file (a 30-minute file costs what a 10-second one does).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from audiossl_jax.data import audio_io, manifest


@dataclasses.dataclass(frozen=True)
class Source:
    """One split: `read(i)` -> float32 [n] in [-1, 1]; labels[i] a tuple of class indices.

    lengths[i] is n; `read_window(i, start, count)` is `read(i)[start:start + count]`
    without decoding the rest. holdout_units[i] is example i's stable hold-out unit
    (`subset.holdout_indices`): its group when it has one (a speaker, a source recording),
    else its path relative to the dataset root (synthetic data: its generating seed).
    keys[i] identifies example i within the dataset whatever its label column: its file's
    absolute path (synthetic data: its generating seed).
    """

    name: str
    split: str
    sample_rate: int
    class_names: tuple[str, ...]
    multi_label: bool
    labels: tuple[tuple[int, ...], ...]
    read: Callable[[int], np.ndarray]
    lengths: tuple[int, ...]
    read_window: Callable[[int, int, int], np.ndarray]
    holdout_units: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def label_array(self, i: int) -> np.ndarray:
        """int32 [] class (-1: none) or float32 [C] multi-hot."""
        classes = self.labels[i]
        if self.multi_label:
            hot = np.zeros(len(self.class_names), np.float32)
            hot[list(classes)] = 1.0
            return hot
        return np.int32(classes[0] if classes else -1)

    def label_spec(self) -> tf.TensorSpec:
        if self.multi_label:
            return tf.TensorSpec([len(self.class_names)], tf.float32)
        return tf.TensorSpec([], tf.int32)

    def subset(self, keep: Sequence[int]) -> Source:
        """The examples ``keep`` as a source of their own (example i reads example keep[i])."""
        keep = [int(i) for i in keep]
        if not keep or min(keep) < 0 or max(keep) >= len(self):
            raise ValueError(
                f"subset of {self.name!r} split {self.split!r}: indices must lie in [0, {len(self)}); "
                f"got {len(keep)} indices"
            )
        return dataclasses.replace(
            self,
            labels=tuple(self.labels[i] for i in keep),
            lengths=tuple(self.lengths[i] for i in keep),
            holdout_units=tuple(self.holdout_units[i] for i in keep) if self.holdout_units else (),
            keys=tuple(self.keys[i] for i in keep) if self.keys else (),
            read=lambda i: self.read(keep[i]),
            read_window=lambda i, a, n: self.read_window(keep[i], a, n),
        )

    def class_members(self) -> list[np.ndarray]:
        """For each class, the example indices that carry it: C arrays of int64."""
        members: list[list[int]] = [[] for _ in self.class_names]
        for i, classes in enumerate(self.labels):
            for c in classes:
                members[c].append(i)
        return [np.asarray(m, np.int64) for m in members]


def from_manifest(name: str, split: str, m: manifest.Manifest, root: str, *, clip: bool = False) -> Source:
    """A source reading the manifest's files with soundfile (resampled to m.sample_rate; clipped to
    [-1, 1] when ``clip``); ``root`` is the dataset's folder (hold-out units are relative to it)."""
    paths = m.paths
    units = tuple(f"group:{g}" if g else f"file:{os.path.relpath(p, root)}" for p, g in zip(paths, m.groups))

    def read(i: int) -> np.ndarray:
        return audio_io.read_audio(paths[i], m.sample_rate, clip=clip)

    def read_window(i: int, start: int, count: int) -> np.ndarray:
        return audio_io.read_window(paths[i], m.sample_rate, start, count, clip=clip)

    return Source(
        name=name,
        split=split,
        sample_rate=m.sample_rate,
        class_names=m.class_names,
        multi_label=m.multi_label,
        labels=m.labels,
        read=read,
        lengths=m.num_samples,
        read_window=read_window,
        holdout_units=units,
        keys=paths,
    )


def from_arrays(
    name: str,
    split: str,
    sample_rate: int,
    class_names: tuple[str, ...],
    audio: Sequence[np.ndarray],
    labels: Sequence[int],
    scale: float,
    keys: Sequence[str],
) -> Source:
    """An in-memory source: audio[i] * scale as float32 (e.g. int16 with scale 1/32768); keys[i]
    is example i's stable hold-out unit."""

    def read(i: int) -> np.ndarray:
        return audio[i].astype(np.float32) * np.float32(scale)

    def read_window(i: int, start: int, count: int) -> np.ndarray:
        return audio[i][start : start + count].astype(np.float32) * np.float32(scale)

    return Source(
        name=name,
        split=split,
        sample_rate=sample_rate,
        class_names=class_names,
        multi_label=False,
        labels=tuple((int(v),) if v >= 0 else () for v in labels),
        read=read,
        lengths=tuple(len(a) for a in audio),
        read_window=read_window,
        holdout_units=tuple(keys),
        keys=tuple(keys),
    )


def read_example(source: Source, index: tf.Tensor) -> dict[str, tf.Tensor]:
    """tf wrapper: int64 index [] -> {'audio': float32 [n], 'label': label_spec()}."""
    spec = source.label_spec()

    def read(i: np.int64) -> tuple[np.ndarray, np.ndarray]:
        return source.read(int(i)), source.label_array(int(i))

    audio, label = tf.numpy_function(read, [index], (tf.float32, spec.dtype), stateful=False)
    audio.set_shape([None])
    label.set_shape(spec.shape)
    return {"audio": audio, "label": label}


def crop_offset(length: int, num_samples: int, position: float) -> int:
    """Start of the crop of num_samples at position in [0, 1] of the free range of a clip of length."""
    max_offset = max(length - num_samples, 0)
    return min(int(math.floor(position * float(max_offset + 1))), max_offset)


def read_crop(source: Source, index: tf.Tensor, position: tf.Tensor, num_samples: int) -> dict[str, tf.Tensor]:
    """tf wrapper: example index [], crop position in [0, 1] [] -> one batch row.

    {'waveform': float32 [num_samples] (zero after the clip's end), 'length': int32 []
    (real samples), 'label': label_spec()}; only the window is decoded.
    """
    spec = source.label_spec()

    def read(i: np.int64, p: np.float64) -> tuple[np.ndarray, np.int32, np.ndarray]:
        i = int(i)
        start = crop_offset(source.lengths[i], num_samples, float(p))
        segment = source.read_window(i, start, num_samples)[:num_samples]
        waveform = np.zeros(num_samples, np.float32)
        waveform[: len(segment)] = segment
        return waveform, np.int32(len(segment)), source.label_array(i)

    waveform, length, label = tf.numpy_function(
        read, [index, position], (tf.float32, tf.int32, spec.dtype), stateful=False
    )
    waveform.set_shape([num_samples])
    length.set_shape([])
    label.set_shape(spec.shape)
    return {"waveform": waveform, "length": length, "label": label}

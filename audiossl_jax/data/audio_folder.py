"""Minimal "audio folder" source: WAV/FLAC files under a directory, read with soundfile.

Layout: `<root>/**/*.wav|*.flac` and an optional `<root>/metadata.csv` with a
`filename` column (relative to root), an optional label column and an optional
`split` column. Without metadata.csv every audio file under root (recursively) is
used, unlabelled. Files must already have the configured sample rate; multichannel
audio is averaged to mono.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib

import numpy as np
import soundfile
import tensorflow as tf

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")
METADATA_FILE = "metadata.csv"


class AudioFolderError(ValueError):
    """A problem with an audio folder, its metadata or one of its files."""


@dataclasses.dataclass(frozen=True)
class AudioFolderIndex:
    """The files of one split of an audio folder, with integer labels (-1: unlabelled)."""

    root: pathlib.Path
    files: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    available_splits: tuple[str, ...]


def _label_mapping(values: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    """Maps label strings to ints: integer labels keep their value, others sort by name."""
    present = sorted({v for v in values if v != ""})
    if not present:
        return {}, ()
    try:
        as_int = {v: int(v) for v in present}
    except ValueError:
        return {v: i for i, v in enumerate(present)}, tuple(present)
    if min(as_int.values()) < 0:
        raise AudioFolderError(f"negative integer labels are not supported: {min(as_int.values())}")
    return as_int, tuple(str(i) for i in range(max(as_int.values()) + 1))


def _scan(root: pathlib.Path) -> list[str]:
    """All audio files under root, recursively, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def index_audio_folder(root: str | pathlib.Path, *, split: str | None = None,
                       label_key: str = "label") -> AudioFolderIndex:
    """Lists the files of `split` (None or 'all': every row) with their labels.

    Split filtering needs a `split` column in metadata.csv; without one, every file
    is used whatever split is asked for. Labels are mapped over all rows, so every
    split shares one mapping.
    """
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise AudioFolderError(f"audio folder not found: {root} (set --config.data.path)")
    metadata = root / METADATA_FILE
    if not metadata.is_file():
        files = _scan(root)
        if not files:
            raise AudioFolderError(f"no {'/'.join(AUDIO_EXTENSIONS)} files found under {root}")
        return AudioFolderIndex(root, tuple(str(root / f) for f in files), (-1,) * len(files), (), ())
    with open(metadata, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise AudioFolderError(f"{metadata} has no rows")
    if "filename" not in rows[0]:
        raise AudioFolderError(f"{metadata} has no 'filename' column (columns: {list(rows[0])})")
    has_labels = label_key in rows[0]
    mapping, class_names = _label_mapping([r[label_key] for r in rows]) if has_labels else ({}, ())
    available = tuple(sorted({r["split"] for r in rows})) if "split" in rows[0] else ()
    if split not in (None, "all") and available:
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise AudioFolderError(f"{metadata} has no rows with split {split!r}; splits: {list(available)}")
    files, labels = [], []
    for row in rows:
        path = root / row["filename"]
        if not path.is_file():
            raise AudioFolderError(f"{metadata}: file of row {row['filename']!r} not found: {path}")
        files.append(str(path))
        labels.append(mapping.get(row[label_key], -1) if has_labels else -1)
    return AudioFolderIndex(root, tuple(files), tuple(labels), class_names, available)


def read_audio(path: str, sample_rate: int) -> np.ndarray:
    """Reads one file as mono float32 [n] in [-1, 1]; errors name the file and the problem."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioFolderError(f"cannot read audio file {path}: {e}") from e
    if rate != sample_rate:
        raise AudioFolderError(
            f"{path} has sample rate {rate} Hz, expected {sample_rate} Hz (resampling is not supported yet)")
    if data.shape[0] == 0:
        raise AudioFolderError(f"audio file {path} is empty (0 samples)")
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def make_dataset(index: AudioFolderIndex, sample_rate: int, *, shard_index: int = 0,
                 shard_count: int = 1, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """{'audio': float32 [n], 'label': int32 []} per file of `index`.

    Sharding and optional per-epoch shuffling act on the file list, before decoding.
    """
    files = np.asarray(index.files, dtype=object)[shard_index::shard_count]
    labels = np.asarray(index.labels, dtype=np.int32)[shard_index::shard_count]
    ds = tf.data.Dataset.from_tensor_slices({"path": files.astype(str), "label": labels})
    if shuffle_seed is not None:
        ds = ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)

    def read(path: bytes) -> np.ndarray:
        return read_audio(path.decode(), sample_rate)

    def decode(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        audio = tf.numpy_function(read, [example["path"]], tf.float32, stateful=False)
        audio.set_shape([None])
        return {"audio": audio, "label": example["label"]}

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

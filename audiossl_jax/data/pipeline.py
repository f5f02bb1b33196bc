"""Host-side tf.data input pipeline: crops, shuffles and batches audio into numpy dicts.

Train batches: {'waveform': float32 [b, N], 'length': int32 [b], 'label': int32 [b]}.
Eval batches add 'valid': bool [b]; padding rows have length 0, label -1, zero audio.
N = round(data_cfg.crop_seconds * data_cfg.sample_rate); b is the per-host batch size.
Row i holds real audio in waveform[i, :length[i]] and zeros after it.
"""

from __future__ import annotations

import math
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf
from ml_collections import config_dict

from audiossl_jax.data import registry

registry.hide_accelerators_from_tf()

Batch = dict[str, np.ndarray]


def default_data_config() -> ml_collections.ConfigDict:
    """Every data config key with its default; config files start from this."""
    cfg = ml_collections.ConfigDict()
    cfg.name = "synthetic_audio"
    cfg.data_dir = config_dict.placeholder(str)
    cfg.path = config_dict.placeholder(str)
    cfg.label_key = "label"
    cfg.prepare = True
    cfg.sample_rate = 16000
    cfg.crop_seconds = 4.0
    cfg.shuffle_buffer = 1024
    cfg.train_split = "train"
    cfg.eval_split = "test"
    return cfg


def crop_samples(data_cfg: ml_collections.ConfigDict) -> int:
    """N, the number of samples per row: round(crop_seconds * sample_rate)."""
    return int(round(data_cfg.crop_seconds * data_cfg.sample_rate))


def _crop(audio: tf.Tensor, num_samples: int, position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Window of num_samples starting at position in [0, 1] of the free range; zero-padded.

    Returns waveform [num_samples] and the number of real samples in it [].
    """
    n = tf.shape(audio, out_type=tf.int64)[0]
    max_offset = tf.maximum(n - num_samples, 0)
    offset = tf.cast(tf.floor(position * tf.cast(max_offset + 1, tf.float64)), tf.int64)
    offset = tf.minimum(offset, max_offset)
    segment = audio[offset:offset + num_samples]
    length = tf.shape(segment)[0]
    waveform = tf.pad(segment, [[0, num_samples - length]])
    waveform.set_shape([num_samples])
    return waveform, tf.cast(length, tf.int32)


def _stream_seeds(seed: int, start_step: int, process_index: int) -> tuple[int, int, int]:
    """Independent (file order, crop, shuffle) seeds derived from the run seed."""
    state = np.random.SeedSequence([seed, start_step, process_index]).generate_state(3)
    return int(state[0]), int(state[1]), int(state[2])


def _check_shard(info: registry.DatasetInfo, process_count: int) -> None:
    if info.num_examples is not None and info.num_examples < process_count:
        raise registry.DatasetError(
            f"{info.name!r} split {info.split!r} has {info.num_examples} examples, "
            f"fewer than the {process_count} hosts that share it")


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def make_train_iterator(data_cfg: ml_collections.ConfigDict, *, batch_size: int, seed: int,
                        process_index: int = 0, process_count: int = 1,
                        start_step: int = 0) -> Iterator[Batch]:
    """Endless per-host training batches (see module docstring), deterministic in the seed.

    Each host reads a disjoint shard of data_cfg.train_split, repeats it, shuffles the
    file order per epoch and a buffer of data_cfg.shuffle_buffer crops, and takes one
    random crop per example. start_step is folded into the seed: a run restarted at
    step k gets a fresh, reproducible stream, not the continuation of the old one.
    """
    file_seed, crop_seed, shuffle_seed = _stream_seeds(seed, start_step, process_index)
    num_samples = crop_samples(data_cfg)
    ds, info = registry.load_dataset(data_cfg, data_cfg.train_split, shard_index=process_index,
                                     shard_count=process_count, shuffle_seed=file_seed)
    _check_shard(info, process_count)

    def crop(index: tf.Tensor, example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        position = tf.random.stateless_uniform(
            [], seed=tf.stack([tf.constant(crop_seed, tf.int64), index]), dtype=tf.float64)
        waveform, length = _crop(example["audio"], num_samples, position)
        return {"waveform": waveform, "length": length, "label": example["label"]}

    ds = ds.repeat().enumerate().map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if data_cfg.shuffle_buffer > 1:
        ds = ds.shuffle(data_cfg.shuffle_buffer, seed=shuffle_seed)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()


def _pad_batch(batch: Batch, batch_size: int) -> Batch:
    """Pads a (possibly short) eval batch to batch_size rows and adds 'valid' [b]."""
    rows = batch["length"].shape[0]
    pad = batch_size - rows
    return {
        "waveform": np.pad(batch["waveform"], ((0, pad), (0, 0))),
        "length": np.pad(batch["length"], (0, pad)),
        "label": np.pad(batch["label"], (0, pad), constant_values=-1),
        "valid": np.arange(batch_size) < rows,
    }


def num_eval_batches(num_examples: int, batch_size: int, process_count: int = 1) -> int:
    """Batches every host yields for a split of num_examples (same on all hosts)."""
    return math.ceil(math.ceil(num_examples / process_count) / batch_size)


def make_eval_iterator(data_cfg: ml_collections.ConfigDict, split: str | None = None, *,
                       batch_size: int, process_index: int = 0,
                       process_count: int = 1) -> Iterator[Batch]:
    """Every example of this host's shard of `split` once, centre-cropped, in order.

    Batches follow the module docstring plus 'valid': bool [b]. The last batch is
    padded, and when the split size is known every host yields the same number of
    batches (num_eval_batches), padding with all-invalid batches where needed.
    """
    split = data_cfg.eval_split if split is None else split
    num_samples = crop_samples(data_cfg)
    ds, info = registry.load_dataset(data_cfg, split, shard_index=process_index,
                                     shard_count=process_count)

    def crop(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        waveform, length = _crop(example["audio"], num_samples, tf.constant(0.5, tf.float64))
        return {"waveform": waveform, "length": length, "label": example["label"]}

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options())
    total = None
    if info.num_examples is not None:
        total = num_eval_batches(info.num_examples, batch_size, process_count)
    empty = {"waveform": np.zeros((0, num_samples), np.float32),
             "length": np.zeros((0,), np.int32), "label": np.zeros((0,), np.int32)}

    def batches() -> Iterator[Batch]:
        count = 0
        for batch in ds.as_numpy_iterator():
            yield _pad_batch(batch, batch_size)
            count += 1
        while total is not None and count < total:
            yield _pad_batch(empty, batch_size)
            count += 1

    return batches()

"""Host-side tf.data input pipeline: orders, crops and batches audio into numpy dicts.

Train batches: {'waveform': float32 [b, N], 'length': int32 [b], 'label': int32 [b]}
('label' is float32 multi-hot [b, C] for multi-label datasets). Eval batches add
'valid': bool [b]; padding rows have length 0, label -1 (multi-hot: zeros), zero audio.
N = round(data_cfg.crop_seconds * data_cfg.sample_rate); b is the per-host batch size.
Row i holds real audio in waveform[i, :length[i]] and zeros after it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import ml_collections
import numpy as np
import tensorflow as tf
from ml_collections import config_dict

from audiossl_jax import frontend
from audiossl_jax.data import registry, source, subset

Batch = dict[str, np.ndarray]


def default_data_config() -> ml_collections.ConfigDict:
    """Every data config key with its default; config files start from this."""
    cfg = ml_collections.ConfigDict()
    cfg.name = "synthetic_audio"
    cfg.data_dir = config_dict.placeholder(str)
    cfg.manual_dir = config_dict.placeholder(str)
    cfg.path = config_dict.placeholder(str)
    cfg.label_key = "label"
    cfg.multi_label = False
    cfg.label_separator = ";"
    cfg.group_key = "group"
    cfg.class_names = ""
    cfg.skip_bad_files = False
    # Float audio outside [-1, 1]: a bad file (False) or clipped when read and counted (True).
    cfg.clip_out_of_range = False
    # Clips shorter than this are bad files (shorter than one 20 ms hop give no frame).
    cfg.min_seconds = 0.02
    cfg.prepare = True
    cfg.sample_rate = 16000
    cfg.crop_seconds = 4.0
    cfg.class_balanced = False
    # Train on round(train_fraction * n) or min(train_size, n) (0: no limit) examples of
    # the training split, drawn by subset_seed (nested: smaller subsets lie inside larger).
    cfg.train_fraction = 1.0
    cfg.train_size = 0
    cfg.subset_seed = 0
    cfg.train_split = "train"
    cfg.eval_split = "test"
    return cfg


def crop_samples(data_cfg: ml_collections.ConfigDict) -> int:
    """N, the number of samples per row: round(crop_seconds * sample_rate)."""
    return frontend.seconds_to_samples(data_cfg.crop_seconds, data_cfg.sample_rate)


def example_batch(config: ml_collections.ConfigDict, batch_size: int) -> Batch:
    """A zero batch with the layout the training pipeline yields for the run ``config`` (its
    ``data``, ``frontend`` and ``task``): waveform [B, N], length [B], label [B] int32.

    With ``config.data.multi_label`` the label is multi-hot float32 [B, C], C =
    ``config.task.num_classes``.
    """
    n = frontend.seconds_to_samples(config.data.crop_seconds, config.frontend.sample_rate)
    if config.data.get("multi_label", False):
        num_classes = config.task.get("num_classes", None)
        if not num_classes or num_classes < 1:
            raise ValueError(
                f"config.data.multi_label=True needs config.task.num_classes (got {num_classes!r}) for the "
                "multi-hot label [B, C]; set it to the number of classes of the dataset."
            )
        label = np.zeros((batch_size, int(num_classes)), np.float32)
    else:
        label = np.zeros((batch_size,), np.int32)
    return {
        "waveform": np.zeros((batch_size, n), np.float32),
        "length": np.full((batch_size,), n, np.int32),
        "label": label,
    }


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def uniform(seed: int, positions: np.ndarray, stream: int) -> np.ndarray:
    """Counter-based uniforms in [0, 1): float64 [k], a pure function of (seed, position, stream).

    SplitMix64 finaliser over a mix of the three integers.
    """
    with np.errstate(over="ignore"):
        x = (
            np.asarray(positions, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            + np.uint64(seed % 2**63) * np.uint64(0xD1B54A32D192ED03)
            + np.uint64(stream) * np.uint64(0x8CB92BA72F3D8DD7)
        ) & _MASK64
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


_CROP_STREAM, _CLASS_STREAM, _MEMBER_STREAM = 1, 2, 3


class TrainOrder:
    """Which example a global stream position reads: a pure function of (seed, position).

    Plain: position p is example perm_e[p % n] with e = p // n and perm_e a permutation
    of all n examples drawn from (seed, e). Class-balanced: position p picks a class
    uniformly among the classes with examples, then an example carrying it uniformly.
    """

    def __init__(self, num_examples: int, seed: int, class_members: list[np.ndarray] | None = None) -> None:
        self.num_examples = num_examples
        self.seed = seed
        self.members = None if class_members is None else [m for m in class_members if len(m)]
        if self.members is not None and not self.members:
            raise registry.DatasetError("data.class_balanced=True needs labelled examples; this split has none")
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 4:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed % 2**63, epoch])
            self._perms[epoch] = rng.permutation(self.num_examples)
        return self._perms[epoch]

    def indices(self, positions: np.ndarray) -> np.ndarray:
        """Example indices int64 [k] of global stream positions [k]."""
        positions = np.asarray(positions, np.int64)
        if self.members is None:
            epochs, offsets = np.divmod(positions, self.num_examples)
            return np.asarray([self._perm(int(e))[o] for e, o in zip(epochs, offsets)], np.int64)
        classes = (uniform(self.seed, positions, _CLASS_STREAM) * len(self.members)).astype(np.int64)
        picks = uniform(self.seed, positions, _MEMBER_STREAM)
        return np.asarray([self.members[c][int(u * len(self.members[c]))] for c, u in zip(classes, picks)], np.int64)


def _check_shard(info: registry.DatasetInfo, process_count: int) -> None:
    if info.num_examples is not None and info.num_examples < process_count:
        raise registry.DatasetError(
            f"{info.name!r} split {info.split!r} has {info.num_examples} examples, "
            f"fewer than the {process_count} hosts that share it"
        )


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def train_examples(data_cfg: ml_collections.ConfigDict, num_examples: int) -> np.ndarray | None:
    """The indices int64 [k] of a split of num_examples that training reads, or None for all.

    k = ``subset.subset_size`` of ``data.train_size`` / ``data.train_fraction``, drawn by
    ``data.subset_seed`` with ``subset.subset_indices`` (independent of the training
    seed, nested across sizes).
    """
    fraction, size = float(data_cfg.get("train_fraction", 1.0)), int(data_cfg.get("train_size", 0))
    k = subset.subset_size(num_examples, fraction, size)
    if k is None:
        return None
    seed = int(data_cfg.get("subset_seed", 0))
    keep = subset.subset_indices(num_examples, k, seed)
    logging.info(
        "%s split %s: training on %d of %d examples (config.data.train_fraction=%g, train_size=%d, subset_seed=%d)",
        data_cfg.name,
        data_cfg.train_split,
        len(keep),
        num_examples,
        fraction,
        size,
        seed,
    )
    return keep


# Clips longer than this many crops are reported at start-up (each crop decodes only its window).
LONG_CLIP_FACTOR = 20


def _warn_long_clips(src: source.Source, num_samples: int) -> int:
    """Logs (and returns) how many clips are over LONG_CLIP_FACTOR crops long."""
    long = [n for n in src.lengths if n > LONG_CLIP_FACTOR * num_samples]
    if long:
        logging.warning(
            "%s split %s: %d of %d clips are over %dx the %.2f s crop (longest %.1f s); each training "
            "example is one crop of them, read by seeking, so most of their audio is seldom seen. "
            "Cut them into shorter files to use all of it.",
            src.name,
            src.split,
            len(long),
            len(src),
            LONG_CLIP_FACTOR,
            num_samples / src.sample_rate,
            max(long) / src.sample_rate,
        )
    return len(long)


def make_train_iterator(
    data_cfg: ml_collections.ConfigDict,
    *,
    batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    start_step: int = 0,
) -> Iterator[Batch]:
    """Endless per-host training batches (see module docstring); batch k is for train step k + 1.

    ``data_cfg.train_fraction`` < 1 or ``data_cfg.train_size`` > 0 restrict training to a
    seeded subset of the split (``train_examples``); the order, crop and resume rules
    are the same.

    Row j of host h in batch k reads global stream position p = (k * hosts + h) * b + j:
    example `TrainOrder(seed).indices(p)` (a per-epoch permutation, or class-balanced
    draws with data.class_balanced), cropped at `uniform(seed, p)`. Every batch is a pure
    function of (seed, k, h), so start_step=k continues an interrupted run exactly and the
    hosts of one step read disjoint examples (within an epoch).
    """
    num_samples = crop_samples(data_cfg)
    src, info = registry.load_source(data_cfg, data_cfg.train_split)
    examples = train_examples(data_cfg, len(src))
    if examples is not None:
        src = src.subset(examples)
    _check_shard(info, process_count)
    _warn_long_clips(src, num_samples)
    balanced = bool(data_cfg.get("class_balanced", False))
    order = TrainOrder(len(src), seed, src.class_members() if balanced else None)
    rows = np.arange(batch_size, dtype=np.int64)

    def plan(step: np.int64) -> tuple[np.ndarray, np.ndarray]:
        positions = (int(step) * process_count + process_index) * batch_size + rows
        return order.indices(positions), uniform(seed, positions, _CROP_STREAM)

    def planned(step: tf.Tensor) -> tf.data.Dataset:
        index, position = tf.numpy_function(plan, [step], (tf.int64, tf.float64), stateful=False)
        index.set_shape([batch_size])
        position.set_shape([batch_size])
        return tf.data.Dataset.from_tensor_slices((index, position))

    ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max).flat_map(planned)
    ds = ds.map(
        lambda i, p: source.read_crop(src, i, p, num_samples), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()


def _pad_batch(batch: Batch, batch_size: int) -> Batch:
    """Pads a (possibly short) eval batch to batch_size rows and adds 'valid' [b]."""
    rows = batch["length"].shape[0]
    pad = batch_size - rows
    label = batch["label"]
    label_pad = ((0, pad),) + ((0, 0),) * (label.ndim - 1)
    return {
        "waveform": np.pad(batch["waveform"], ((0, pad), (0, 0))),
        "length": np.pad(batch["length"], (0, pad)),
        "label": np.pad(label, label_pad, constant_values=-1 if label.ndim == 1 else 0),
        "valid": np.arange(batch_size) < rows,
    }


def num_eval_batches(num_examples: int, batch_size: int, process_count: int = 1) -> int:
    """Batches every host yields for a split of num_examples (same on all hosts)."""
    return math.ceil(math.ceil(num_examples / process_count) / batch_size)


def make_eval_iterator(
    data_cfg: ml_collections.ConfigDict,
    split: str | None = None,
    *,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """Every example of this host's shard of `split` once, centre-cropped, in order.

    Batches follow the module docstring plus 'valid': bool [b]. The last batch is
    padded, and when the split size is known every host yields the same number of
    batches (num_eval_batches), padding with all-invalid batches where needed.
    """
    split = data_cfg.eval_split if split is None else split
    num_samples = crop_samples(data_cfg)
    src, info = registry.load_source(data_cfg, split)
    ds = tf.data.Dataset.from_tensor_slices(np.arange(len(src), dtype=np.int64)[process_index::process_count])
    ds = ds.map(
        lambda i: source.read_crop(src, i, tf.constant(0.5, tf.float64), num_samples),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options())
    total = None
    if info.num_examples is not None:
        total = num_eval_batches(info.num_examples, batch_size, process_count)
    label_shape = (0, info.num_classes) if info.multi_label else (0,)
    empty = {
        "waveform": np.zeros((0, num_samples), np.float32),
        "length": np.zeros((0,), np.int32),
        "label": np.zeros(label_shape, np.float32 if info.multi_label else np.int32),
    }

    def batches() -> Iterator[Batch]:
        count = 0
        for batch in ds.as_numpy_iterator():
            yield _pad_batch(batch, batch_size)
            count += 1
        while total is not None and count < total:
            yield _pad_batch(empty, batch_size)
            count += 1

    return batches()

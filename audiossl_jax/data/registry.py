"""Dataset registry: maps `data_cfg.name` to an un-batched tf.data source plus metadata.

Every source yields {'audio': float32 [n] in [-1, 1], 'label': int32 []} (label -1 when
unlabelled), un-shuffled (unless a shuffle seed is passed), un-cropped and un-batched.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds

from audiossl_jax.data import audio_folder, synthetic


def hide_accelerators_from_tf() -> None:
    """Keeps TensorFlow off GPUs/TPUs so that JAX owns them; safe to call repeatedly."""
    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
        pass


hide_accelerators_from_tf()

SYNTHETIC_NAME = "synthetic_audio"
AUDIO_FOLDER_NAME = "audio_folder"

FOLDER_HINT = "--config.data.name=audio_folder --config.data.path=/path/to/audio"

PAPER_DATASETS: dict[str, str] = {
    "audioset": "AudioSet, unbalanced train segments (~2M 10-s YouTube clips, 527 classes)",
    "audioset_balanced": "AudioSet, balanced train segments (~22k 10-s YouTube clips, 527 classes)",
}


class DatasetError(ValueError):
    """A dataset cannot be provided as configured."""


class DatasetNotPreparedError(DatasetError):
    """The dataset exists by name but is not prepared on disk."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one split of a dataset.

    num_classes is 0 and class_names empty for unlabelled data; num_examples counts
    the whole split (before host sharding), None when unknown.
    """

    name: str
    split: str
    sample_rate: int
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int | None


def known_dataset_names() -> tuple[str, ...]:
    """Every name `data_cfg.name` accepts."""
    synthetic_names = tuple(f"{SYNTHETIC_NAME}/{c.name}" for c in synthetic.SyntheticAudio.BUILDER_CONFIGS)
    return (SYNTHETIC_NAME, *synthetic_names, AUDIO_FOLDER_NAME, *PAPER_DATASETS)


def _get(cfg: Any, key: str, default: Any) -> Any:
    """cfg[key] when present and not None, else default."""
    value = cfg.get(key, None) if hasattr(cfg, "get") else getattr(cfg, key, None)
    return default if value is None else value


def _tfds_data_dir(cfg: Any) -> str:
    return os.path.expanduser(_get(cfg, "data_dir", tfds.core.constants.DATA_DIR))


def _load_synthetic(cfg: Any, split: str, shard_index: int, shard_count: int,
                    shuffle_seed: int | None) -> tuple[tf.data.Dataset, DatasetInfo]:
    name = cfg.name
    config_name = name.split("/", 1)[1] if "/" in name else "default"
    data_dir = _tfds_data_dir(cfg)
    builder = synthetic.SyntheticAudio(config=config_name, data_dir=data_dir)
    if not builder.is_prepared():
        if not _get(cfg, "prepare", True):
            raise DatasetNotPreparedError(
                f"dataset {name!r} is not prepared under {data_dir}; set --config.data.prepare=True "
                "to generate it (no download needed, seconds)")
        logging.info("preparing the built-in dataset %r under %s (once; about 10 s)", name, data_dir)
        builder.download_and_prepare()
    splits = builder.info.splits
    if split not in splits:
        raise DatasetError(f"dataset {name!r} has no split {split!r}; splits: {sorted(splits)}")
    sample_rate = int(_get(cfg, "sample_rate", synthetic.SAMPLE_RATE))
    if sample_rate != synthetic.SAMPLE_RATE:
        raise DatasetError(
            f"dataset {name!r} is {synthetic.SAMPLE_RATE} Hz, config asks for {sample_rate} Hz")
    sub_split = tfds.even_splits(split, n=shard_count)[shard_index] if shard_count > 1 else split
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, try_autocache=False)
    ds = builder.as_dataset(split=sub_split, shuffle_files=shuffle_seed is not None, read_config=read_config)
    ds = ds.map(lambda ex: {"audio": tf.cast(ex["audio"], tf.float32) / 32768.0,
                            "label": tf.cast(ex["label"], tf.int32)},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    info = DatasetInfo(name=name, split=split, sample_rate=synthetic.SAMPLE_RATE,
                       num_classes=len(synthetic.CLASS_NAMES), class_names=synthetic.CLASS_NAMES,
                       num_examples=splits[split].num_examples)
    return ds, info


def _load_audio_folder(cfg: Any, split: str, shard_index: int, shard_count: int,
                       shuffle_seed: int | None) -> tuple[tf.data.Dataset, DatasetInfo]:
    path = _get(cfg, "path", None)
    if path is None:
        raise DatasetError(f"dataset {AUDIO_FOLDER_NAME!r} needs a folder: --config.data.path=/path/to/audio")
    index = audio_folder.index_audio_folder(path, split=split, label_key=_get(cfg, "label_key", "label"))
    sample_rate = int(_get(cfg, "sample_rate", 16000))
    ds = audio_folder.make_dataset(index, sample_rate, shard_index=shard_index,
                                   shard_count=shard_count, shuffle_seed=shuffle_seed)
    info = DatasetInfo(name=AUDIO_FOLDER_NAME, split=split, sample_rate=sample_rate,
                       num_classes=len(index.class_names), class_names=index.class_names,
                       num_examples=len(index.files))
    return ds, info


def _not_prepared(cfg: Any, split: str, *_: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
    name = cfg.name
    expected = os.path.join(_tfds_data_dir(cfg), name)
    raise DatasetNotPreparedError(
        f"dataset {name!r} ({PAPER_DATASETS[name]}) is not prepared: it cannot be downloaded "
        f"automatically and no builder exists yet; it was expected under {expected} "
        f"(data_dir={_tfds_data_dir(cfg)}). To train on a folder of your own audio instead, "
        f"pass {FOLDER_HINT}")


_Loader = Callable[..., tuple[tf.data.Dataset, DatasetInfo]]


def _loader(name: str) -> _Loader:
    if name == SYNTHETIC_NAME or name.startswith(SYNTHETIC_NAME + "/"):
        if name in known_dataset_names():
            return _load_synthetic
    elif name == AUDIO_FOLDER_NAME:
        return _load_audio_folder
    elif name in PAPER_DATASETS:
        return _not_prepared
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(known_dataset_names())}")


def load_dataset(data_cfg: Any, split: str, *, shard_index: int = 0, shard_count: int = 1,
                 shuffle_seed: int | None = None) -> tuple[tf.data.Dataset, DatasetInfo]:
    """The source of `split` and its metadata.

    shard_index/shard_count select a disjoint part of the examples (before decoding);
    shuffle_seed, when given, shuffles the file/example order deterministically and
    anew on each repetition (a cheap file-level shuffle; the pipeline adds a buffer).
    """
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
    return _loader(data_cfg.name)(data_cfg, split, shard_index, shard_count, shuffle_seed)


def get_dataset(data_cfg: Any, split: str, **kwargs: Any) -> tf.data.Dataset:
    """{'audio': float32 [n] in [-1, 1], 'label': int32 []}; kwargs as `load_dataset`."""
    return load_dataset(data_cfg, split, **kwargs)[0]


def get_dataset_info(data_cfg: Any, split: str) -> DatasetInfo:
    """Metadata of `split` (prepares the synthetic dataset when needed and allowed)."""
    return load_dataset(data_cfg, split)[1]

"""Dataset registry: maps `data_cfg.name` to an un-batched tf.data source plus metadata.

`load_source` gives random access to one split (`source.Source`); `load_dataset` wraps it
as tf.data yielding {'audio': float32 [n] in [-1, 1], 'label': int32 [] (-1 when
unlabelled) or float32 multi-hot [C]}, un-shuffled (unless a shuffle seed is passed),
un-cropped and un-batched. Besides a dataset's own split names, every dataset accepts the
derived splits of `subset.GRAMMAR` (seeded hold-out, cross-validation folds).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from audiossl_jax.data import audio_folder, datasets, manifest, source, subset, synthetic


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

PAPER_DATASETS: dict[str, str] = {name: spec.description for name, spec in datasets.SPECS.items()}


class DatasetError(ValueError):
    """A dataset cannot be provided as configured."""


class DatasetNotPreparedError(DatasetError):
    """The dataset exists by name but is not prepared on disk."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one split of a dataset.

    num_classes is 0 and class_names empty for unlabelled data; num_examples counts
    the whole split (before host sharding), None when unknown; num_unlabelled counts
    its examples without a label.
    """

    name: str
    split: str
    sample_rate: int
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int | None
    metric: str = ""
    multi_label: bool = False
    num_unlabelled: int = 0


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


@functools.lru_cache(maxsize=8)
def _synthetic_source(data_dir: str, config_name: str, split: str) -> source.Source:
    """The prepared split held in memory as int16 (random access for index-based pipelines)."""
    builder = synthetic.SyntheticAudio(config=config_name, data_dir=data_dir)
    audio, labels, seeds = [], [], []
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
        audio.append(ex["audio"])
        labels.append(int(ex["label"]))
        seeds.append(f"seed:{int(ex['seed'])}")
    name = SYNTHETIC_NAME if config_name == "default" else f"{SYNTHETIC_NAME}/{config_name}"
    return source.from_arrays(
        name, split, synthetic.SAMPLE_RATE, synthetic.CLASS_NAMES, audio, labels, scale=1.0 / 32768.0, keys=seeds
    )


def _load_synthetic(cfg: Any, split: str) -> tuple[source.Source, DatasetInfo]:
    name = cfg.name
    config_name = name.split("/", 1)[1] if "/" in name else "default"
    data_dir = _tfds_data_dir(cfg)
    builder = synthetic.SyntheticAudio(config=config_name, data_dir=data_dir)
    if not builder.is_prepared():
        if not _get(cfg, "prepare", True):
            raise DatasetNotPreparedError(
                f"dataset {name!r} is not prepared under {data_dir}; set --config.data.prepare=True "
                "to generate it (no download needed, seconds)"
            )
        logging.info("preparing the built-in dataset %r under %s (once; about 10 s)", name, data_dir)
        builder.download_and_prepare()
    splits = builder.info.splits
    if split not in splits:
        folds = " (it has no folds, so no cross-validation splits)" if "@cv:" in split else ""
        raise DatasetError(f"dataset {name!r} has no split {split!r}{folds}; splits: {sorted(splits)}")
    sample_rate = int(_get(cfg, "sample_rate", synthetic.SAMPLE_RATE))
    if sample_rate != synthetic.SAMPLE_RATE:
        raise DatasetError(f"dataset {name!r} is {synthetic.SAMPLE_RATE} Hz, config asks for {sample_rate} Hz")
    src = _synthetic_source(data_dir, config_name, split)
    info = DatasetInfo(
        name=name,
        split=split,
        sample_rate=synthetic.SAMPLE_RATE,
        num_classes=len(synthetic.CLASS_NAMES),
        class_names=synthetic.CLASS_NAMES,
        num_examples=len(src),
        metric="accuracy",
    )
    return src, info


def _settings(cfg: Any) -> dict[str, Any]:
    """Config values that shape a prepared manifest (part of its fingerprint)."""
    return {
        "version": 3,
        "sample_rate": int(_get(cfg, "sample_rate", 16000)),
        "skip_bad_files": bool(_get(cfg, "skip_bad_files", False)),
        "clip_out_of_range": bool(_get(cfg, "clip_out_of_range", False)),
        "min_seconds": float(_get(cfg, "min_seconds", 0.0)),
        "label_key": _get(cfg, "label_key", "label"),
        "multi_label": bool(_get(cfg, "multi_label", False)),
        "label_separator": _get(cfg, "label_separator", ";"),
        "group_key": _get(cfg, "group_key", "group"),
        "class_names": _get(cfg, "class_names", ""),
    }


def _prepared(cfg: Any, raw: manifest.RawIndex, out_dir: pathlib.Path, name: str) -> manifest.Manifest:
    """The manifest of `raw`: loaded when prepared with the same input and settings, else prepared."""
    settings = _settings(cfg)
    fingerprint = audio_folder.fingerprint(raw, settings)
    found = manifest.load(out_dir, fingerprint)
    if found is not None:
        return found
    if not _get(cfg, "prepare", True):
        raise DatasetNotPreparedError(
            f"dataset {name!r} is not prepared (or its input/config changed) under {out_dir}; set "
            "--config.data.prepare=True to check every file once and write its manifest"
        )
    logging.info("preparing %r from %s into %s (checks every file once)", name, raw.where, out_dir)
    return manifest.prepare(
        raw,
        sample_rate=settings["sample_rate"],
        skip_bad_files=settings["skip_bad_files"],
        out_dir=out_dir,
        fingerprint=fingerprint,
        clip=settings["clip_out_of_range"],
        min_seconds=settings["min_seconds"],
    )[0]


def _info(name: str, split: str, m: manifest.Manifest, metric: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        split=split,
        sample_rate=m.sample_rate,
        num_classes=len(m.class_names),
        class_names=m.class_names,
        num_examples=len(m),
        metric=metric,
        multi_label=m.multi_label,
        num_unlabelled=sum(not labels for labels in m.labels),
    )


def _load_audio_folder(cfg: Any, split: str) -> tuple[source.Source, DatasetInfo]:
    path = _get(cfg, "path", None)
    if path is None:
        raise DatasetError(f"dataset {AUDIO_FOLDER_NAME!r} needs a folder: --config.data.path=/path/to/audio")
    s = _settings(cfg)
    names = s["class_names"]
    raw = audio_folder.raw_index(
        path,
        label_key=s["label_key"],
        multi_label=s["multi_label"],
        label_separator=s["label_separator"],
        group_key=s["group_key"],
        class_names=tuple(n.strip() for n in names.split(",")) if names else None,
    )
    labels = {k: s[k] for k in ("label_key", "multi_label", "label_separator", "class_names")}
    out_dir = audio_folder.prepared_dir(pathlib.Path(_tfds_data_dir(cfg)), path, labels)
    prepared = _prepared(cfg, raw, out_dir, AUDIO_FOLDER_NAME)
    _warn_unmatched_splits(cfg, prepared, raw.where)
    m = manifest.select(prepared, split, raw.where)
    metric = "mAP" if m.multi_label else "accuracy"
    root = str(pathlib.Path(path).expanduser().resolve())
    return (
        source.from_manifest(AUDIO_FOLDER_NAME, split, m, root, clip=s["clip_out_of_range"]),
        _info(AUDIO_FOLDER_NAME, split, m, metric),
    )


def _warn_unmatched_splits(cfg: Any, m: manifest.Manifest, where: str) -> None:
    """Logs the rows whose split value neither data.train_split nor data.eval_split selects, with counts."""
    configured = {
        subset.base_name(_get(cfg, key, default)) for key, default in (("train_split", "train"), ("eval_split", "test"))
    }
    unmatched = manifest.unmatched_splits(m, configured - {None})
    if unmatched:
        counts = ", ".join(f"{value!r}: {n} rows" for value, n in unmatched.items())
        logging.warning(
            "%s: split values that no configured split selects (%s; data.train_split=%r, "
            "data.eval_split=%r), so no run reads those rows: %s",
            where,
            counts,
            _get(cfg, "train_split", "train"),
            _get(cfg, "eval_split", "test"),
            "fix the split column, or set those keys",
        )


def raw_dir(cfg: Any, spec: datasets.DatasetSpec) -> pathlib.Path:
    """Where the raw layout of `spec` must be: data.manual_dir, else <data_dir>/downloads/manual/<raw_dir>."""
    manual = _get(cfg, "manual_dir", None)
    if manual is not None:
        return pathlib.Path(manual).expanduser()
    return pathlib.Path(_tfds_data_dir(cfg)) / "downloads" / "manual" / spec.raw_dir


def _load_paper_dataset(cfg: Any, split: str) -> tuple[source.Source, DatasetInfo]:
    spec = datasets.SPECS[cfg.name]
    raw = raw_dir(cfg, spec)
    out_dir = pathlib.Path(_tfds_data_dir(cfg)) / spec.name / "prepared"
    if not raw.is_dir():
        download = (
            "it is not downloaded automatically (no network access is assumed)"
            if spec.public_download
            else "it cannot be downloaded automatically"
        )
        raise DatasetNotPreparedError(
            f"dataset {spec.name!r} ({spec.description}) is not prepared: {download}. Its raw files were "
            f"expected under {raw} (data_dir={_tfds_data_dir(cfg)}; override with --config.data.manual_dir). "
            f"To get them: {spec.how_to_get}. The first run then checks every file once and writes "
            f"{out_dir}. To train on a folder of your own audio instead, pass {FOLDER_HINT}"
        )
    layout = spec.rows(raw)
    index = manifest.RawIndex(
        where=f"{spec.name} ({raw})",
        rows=tuple(layout.rows),
        files=None if layout.files is None else tuple(layout.files),
        class_names=layout.class_names,
        multi_label=spec.multi_label,
        excluded=tuple(layout.excluded),
    )
    m = manifest.select(_prepared(cfg, index, out_dir, spec.name), split, index.where, spec.aliases)
    clip = bool(_get(cfg, "clip_out_of_range", False))
    return (source.from_manifest(spec.name, split, m, str(raw), clip=clip), _info(spec.name, split, m, spec.metric))


_Loader = Callable[[Any, str], tuple[source.Source, DatasetInfo]]


def _loader(name: str) -> _Loader:
    if name == SYNTHETIC_NAME or name.startswith(SYNTHETIC_NAME + "/"):
        if name in known_dataset_names():
            return _load_synthetic
    elif name == AUDIO_FOLDER_NAME:
        return _load_audio_folder
    elif name in PAPER_DATASETS:
        return _load_paper_dataset
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(known_dataset_names())}")


def _load_holdout(data_cfg: Any, split: str, rule: subset.DerivedSplit) -> tuple[source.Source, DatasetInfo]:
    """The hold-out (or the rest) of `rule.base`: `subset.holdout_indices` of its hold-out units."""
    src, info = load_source(data_cfg, rule.base)
    if len(src.holdout_units) != len(src):
        raise DatasetError(
            f"dataset {info.name!r} split {rule.base!r}: its source has no hold-out units, so "
            f"split {split!r} cannot be drawn"
        )
    try:
        keep = subset.holdout_indices(src.holdout_units, rule.percent, rule.seed, rest=rule.kind == subset.REST)
    except ValueError as e:
        raise DatasetError(f"dataset {info.name!r} split {split!r}: {e}") from e
    part = dataclasses.replace(src.subset(keep), split=split)
    logging.info(
        "dataset %r split %r: %d of the %d examples of %r (seeded %d%% hold-out, seed %d, %s)",
        info.name,
        split,
        len(part),
        len(src),
        rule.base,
        rule.percent,
        rule.seed,
        "the hold-out" if rule.kind == subset.HOLDOUT else "the rest",
    )
    return part, dataclasses.replace(
        info, split=split, num_examples=len(part), num_unlabelled=sum(not labels for labels in part.labels)
    )


def load_source(data_cfg: Any, split: str) -> tuple[source.Source, DatasetInfo]:
    """Random access to `split` (preparing it when needed and allowed) and its metadata.

    `split` is a split of the dataset or a derived split (`subset.GRAMMAR`).
    """
    try:
        rule = subset.parse_split(split)
    except ValueError as e:
        raise DatasetError(f"dataset {data_cfg.name!r}: {e}") from e
    if rule is not None and rule.kind != subset.CV:
        return _load_holdout(data_cfg, split, rule)
    try:
        return _loader(data_cfg.name)(data_cfg, split)
    except (manifest.PreparationError, audio_folder.AudioFolderError) as e:
        raise DatasetError(str(e)) from e


def load_dataset(
    data_cfg: Any, split: str, *, shard_index: int = 0, shard_count: int = 1
) -> tuple[tf.data.Dataset, DatasetInfo]:
    """The source of `split` as tf.data, and its metadata.

    shard_index/shard_count select every shard_count-th example (before decoding).
    """
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
    src, info = load_source(data_cfg, split)
    indices = np.arange(len(src), dtype=np.int64)[shard_index::shard_count]
    ds = tf.data.Dataset.from_tensor_slices(indices)
    ds = ds.map(lambda i: source.read_example(src, i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds, info


def get_dataset(data_cfg: Any, split: str, **kwargs: Any) -> tf.data.Dataset:
    """{'audio': float32 [n] in [-1, 1], 'label': int32 [] or float32 [C]}; kwargs as `load_dataset`."""
    return load_dataset(data_cfg, split, **kwargs)[0]


def get_dataset_info(data_cfg: Any, split: str) -> DatasetInfo:
    """Metadata of `split` (prepares the dataset when needed and allowed)."""
    return load_source(data_cfg, split)[1]

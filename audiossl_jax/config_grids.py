"""Configs of the conformer paper's grids of runs (Srivastava et al., 2022); run by ``evaluation.grids``.

``configs/grid_<name>.py:<variant>`` return these. Every grid config has ``mode='grid'``,
``grid`` (which grid), ``metric`` (the fine-tuning result reported and selected on) and
the run configs its points start from (``base``, ``balanced``, ``pretrain``,
``downstream``), so ``--config.base.<key>=...`` overrides any key of every point.
"""

from __future__ import annotations

import ml_collections

from audiossl_jax.config_finetune import LABEL_FRACTIONS, variant_config
from audiossl_jax.config_lib import repo_path, wav2vec2_pretrain_config

# The metric each paper task is reported in (Table 1 and Table 3), a key of
# ``metrics.classification_metrics``: mAP, lwlrap, accuracy, MAUC, top-1 accuracy.
TASK_METRICS = {
    "audioset": "mAP",
    "audioset_balanced": "mAP",
    "fsdkaggle2019_curated": "lwlrap",
    "fsdkaggle2019_noisy": "lwlrap",
    "esc50": "accuracy",
    "dcase2019_1a": "accuracy",
    "magnatagatune": "mauc",
    "kinetics700_audio": "accuracy",
    "smoke": "accuracy",
}
# Tasks with an official validation split. Kinetics-700's "validation" is its test split
# (registry alias), so it is not used for selection; every other task holds out a seeded
# HOLDOUT_PERCENT of its training split ('<train>@holdout:P:SEED', trained on '<train>@rest:P:SEED').
VALIDATION_SPLITS = {"magnatagatune": "validation"}
HOLDOUT_PERCENT, HOLDOUT_SEED = 10, 0
# Sec. 4.3: "we use a batch size of 640 and 64 for Full AudioSet and MagnaTagATune"; those
# tasks keep their batch size, the others also try half of it ("smaller datasets prefer
# smaller batches").
FIXED_BATCH = ("audioset", "magnatagatune")


def grid_config(grid: str, metric: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(mode="grid", grid=grid, metric=metric))


def _size_and_task(variant: str, default_task: str) -> tuple[str, str]:
    """``'<task>[:S|L]'`` -> (size, task); AudioSet defaults to cf_L (the paper: "For AudioSet,
    we use the larger model (cfL)"), the rest to cf_S."""
    task, _, size = (variant or default_task).partition(":")
    size = size or ("L" if task.startswith("audioset") else "S")
    if size not in ("S", "L"):
        raise ValueError(f"variant {variant!r}: the size after ':' must be 'S' or 'L'")
    return size, task


def holdout_splits(train_split: str) -> tuple[str, str]:
    """(validation, training) split strings of the seeded hold-out of ``train_split``."""
    suffix = f"{HOLDOUT_PERCENT}:{HOLDOUT_SEED}"
    return f"{train_split}@holdout:{suffix}", f"{train_split}@rest:{suffix}"


def sweep_config(variant: str) -> ml_collections.ConfigDict:
    """The Sec. 4.3 sweep of one task: ``'<task>[:S|L]'`` (a paper task or 'smoke')."""
    size, task = _size_and_task(variant, "magnatagatune")
    if task not in TASK_METRICS:
        raise ValueError(f"unknown sweep task {task!r}: use one of {sorted(TASK_METRICS)}, optionally ':S' or ':L'")
    c = grid_config("sweep", TASK_METRICS[task])
    c.base = variant_config(size, task)
    if task in VALIDATION_SPLITS:
        val_split = VALIDATION_SPLITS[task]
    else:
        val_split, c.base.data.train_split = holdout_splits(c.base.data.train_split)
    steps, batch = int(c.base.total_steps), int(c.base.batch_size)
    c.sweep = ml_collections.ConfigDict(
        dict(
            peak_learning_rates=(5e-5, 1e-4, 2e-4),
            total_steps=(steps // 2, steps),
            batch_sizes=(batch,) if task in FIXED_BATCH else (batch // 2, batch),
            output_dropouts=(0.0, 0.1, 0.2),
            val_split=val_split,
        )
    )
    if task == "smoke":
        c.sweep.update(
            dict(peak_learning_rates=(1e-3, 3e-3), total_steps=(steps,), batch_sizes=(batch,), output_dropouts=(0.1,))
        )
    return c


def label_fractions_config(variant: str) -> ml_collections.ConfigDict:
    """Table 1: ``''`` (cf_L on AudioSet, ``LABEL_FRACTIONS``) or ``'smoke'`` (built-in data, 50% and 100%)."""
    c = grid_config("label_fractions", "mAP")
    if variant == "smoke":
        c.metric = "accuracy"
        c.base = variant_config("S", "smoke")
        c.label_fractions = ml_collections.ConfigDict(
            dict(
                labels=("half", "all"),
                percents=(50, 100),
                balanced_percent=0,
                arms=("pretrained", "scratch"),
                pretrained=f"train:{repo_path('configs/pretrain_cfS.py')}:smoke",
            )
        )
        return c
    if variant:
        raise ValueError(f"unknown variant {variant!r}: use '' (the paper's Table 1) or 'smoke'")
    c.base = variant_config("L", "audioset")
    c.balanced = variant_config("L", "audioset_balanced")
    c.label_fractions = ml_collections.ConfigDict(
        dict(
            labels=tuple(LABEL_FRACTIONS),
            percents=tuple(LABEL_FRACTIONS.values()),
            balanced_percent=1,
            arms=("pretrained", "scratch"),
            pretrained=f"train:{repo_path('configs/pretrain_cfL.py')}",
        )
    )
    return c


def cv_config(variant: str) -> ml_collections.ConfigDict:
    """ESC-50 5-fold cross-validation: fold K trains on 'train@cv:K' (all folds but K) and tests
    on 'test@cv:K' (fold K). Variant ``''`` or ``'S'`` (cf_S), ``'L'`` (cf_L), or ``'smoke'``
    (the smoke model on the built-in data, two folds: its train and test splits, each in turn)."""
    c = grid_config("cv", TASK_METRICS["esc50"])
    if variant == "smoke":
        c.base = variant_config("S", "smoke")
        c.cv = ml_collections.ConfigDict(
            dict(folds=(1, 2), train_splits=("train", "test"), test_splits=("test", "train"))
        )
        return c
    size = variant or "S"
    if size not in ("S", "L"):
        raise ValueError(f"unknown variant {variant!r}: use 'S' (cf_S, the default), 'L' (cf_L) or 'smoke'")
    c.base = variant_config(size, "esc50")
    folds = (1, 2, 3, 4, 5)
    c.cv = ml_collections.ConfigDict(
        dict(
            folds=folds,
            train_splits=tuple(f"train@cv:{k}" for k in folds),
            test_splits=tuple(f"test@cv:{k}" for k in folds),
        )
    )
    return c


def ablation_config(variant: str) -> ml_collections.ConfigDict:
    """Fig. 2: ``''`` (cf_L pre-trained on AudioSet, fine-tuned on Full and Balanced AudioSet)
    or ``'smoke'`` (the smoke model on built-in data)."""
    c = grid_config("ablation", "mAP")
    if variant == "smoke":
        c.metric = "accuracy"
        c.pretrain = wav2vec2_pretrain_config("S", "smoke")
        c.downstream = ml_collections.ConfigDict(dict(tiny=variant_config("S", "smoke")))
        c.ablation = ml_collections.ConfigDict(
            dict(
                pretrain_fraction=(0.5, 1.0),
                num_blocks=(1, 2),
                num_heads=(2, 4),
                baseline=dict(pretrain_fraction=1.0, num_blocks=1, num_heads=2),
            )
        )
        return c
    if variant:
        raise ValueError(f"unknown variant {variant!r}: use '' (the paper's Fig. 2) or 'smoke'")
    c.pretrain = wav2vec2_pretrain_config("L", None)
    c.downstream = ml_collections.ConfigDict(
        dict(full=variant_config("L", "audioset"), balanced=variant_config("L", "audioset_balanced"))
    )
    # "from 6k to 60k hours" of a 67k-hour corpus; "from 8 conformer blocks ... to 20";
    # "from 4 to 24" heads (divisors of d=768). Intermediate values are our choice.
    c.ablation = ml_collections.ConfigDict(
        dict(
            pretrain_fraction=(0.1, 0.3, 0.6, 1.0),
            num_blocks=(8, 12, 16, 20),
            num_heads=(4, 8, 12, 16, 24),
            baseline=dict(pretrain_fraction=1.0, num_blocks=12, num_heads=12),
        )
    )
    return c

"""Tables and helpers of the conformer paper's grids of runs (Srivastava et al., 2022); run by ``evaluation.grids``.

The grids themselves are ``configs/grid_<name>.py``. Every grid config has ``mode='grid'``,
``grid`` (which grid), ``metric`` (the fine-tuning result reported and selected on) and
the run configs its points start from (``base``, ``balanced``, ``pretrain``,
``downstream``), so ``--config.base.<key>=...`` overrides any key of every point.
"""

from __future__ import annotations

import ml_collections

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
    """The keys every grid config has: ``mode='grid'``, which ``grid``, the ``metric`` reported."""
    return ml_collections.ConfigDict(dict(mode="grid", grid=grid, metric=metric))


def size_and_task(variant: str, default_task: str) -> tuple[str, str]:
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

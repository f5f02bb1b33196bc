"""ESC-50 5-fold cross-validation (Srivastava et al., 2022, Sec. 3.1 and Table 3): fine-tune
on four folds, test on the fifth, five times; the mean and the five accuracies.

    python -m audiossl_jax.main --config=configs/grid_esc50_cv.py --workdir=runs/esc50_cv \
        --config.base.task.pretrained_workdir=runs/cfS

Variants: 'S' (cf_S, the default), 'L' (cf_L), 'smoke' (built-in data: its train and test splits as two folds).
"""

import ml_collections

from audiossl_jax import config_grids, config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    """Fold K trains on 'train@cv:K' (all folds but K) and tests on 'test@cv:K' (fold K)."""
    c = config_grids.grid_config("cv", config_grids.TASK_METRICS["esc50"])
    if variant == "smoke":
        c.base = config_lib.load_config_file("eval_finetune_cfS.py:smoke")
        c.cv = ml_collections.ConfigDict(
            dict(folds=(1, 2), train_splits=("train", "test"), test_splits=("test", "train"))
        )
        return c
    size = variant or "S"
    if size not in ("S", "L"):
        raise ValueError(f"unknown variant {variant!r}: use 'S' (cf_S, the default), 'L' (cf_L) or 'smoke'")
    c.base = config_lib.load_config_file(f"eval_finetune_cf{size}.py:esc50")
    folds = (1, 2, 3, 4, 5)
    c.cv = ml_collections.ConfigDict(
        dict(
            folds=folds,
            train_splits=tuple(f"train@cv:{k}" for k in folds),
            test_splits=tuple(f"test@cv:{k}" for k in folds),
        )
    )
    return c

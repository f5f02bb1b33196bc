"""ESC-50 5-fold cross-validation (Srivastava et al., 2022, Sec. 3.1 and Table 3): fine-tune
on four folds, test on the fifth, five times; the mean and the five accuracies.

    python -m audiossl_jax.main --config=configs/grid_esc50_cv.py --workdir=runs/esc50_cv \
        --config.base.task.pretrained_workdir=runs/cfS

Variants: 'S' (cf_S, the default), 'L' (cf_L), 'smoke' (built-in data: its train and test splits as two folds).
"""

from audiossl_jax import config_grids


def get_config(variant: str = ""):
    return config_grids.cv_config(variant)

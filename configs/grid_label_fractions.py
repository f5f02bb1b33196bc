"""Table 1 of Srivastava et al. (2022): AudioSet mAP of cf_L with and without pre-training
for 1% (the Balanced set), 3%, 10%, 30% and 100% of Full AudioSet's labelled clips.

    python -m audiossl_jax.main --config=configs/grid_label_fractions.py --workdir=runs/table1 \
        --config.label_fractions.pretrained=runs/cfL

``label_fractions.pretrained`` is a pre-training run directory, or (the default)
``train:configs/pretrain_cfL.py`` to pre-train it into ``<workdir>/encoders/pretrained``.
Variants: '' (the paper's) or 'smoke' (built-in data, seconds).
"""

import ml_collections

from audiossl_jax import config_grids, config_lib
from audiossl_jax.config_finetune import LABEL_FRACTIONS


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_grids.grid_config("label_fractions", "mAP")
    if variant == "smoke":
        c.metric = "accuracy"
        c.base = config_lib.load_config_file("eval_finetune_cfS.py:smoke")
        c.label_fractions = ml_collections.ConfigDict(
            dict(
                labels=("half", "all"),
                percents=(50, 100),
                balanced_percent=0,
                arms=("pretrained", "scratch"),
                pretrained=f"train:{config_lib.repo_path('configs/pretrain_cfS.py')}:smoke",
            )
        )
        return c
    if variant:
        raise ValueError(f"unknown variant {variant!r}: use '' (the paper's Table 1) or 'smoke'")
    # cf_L fine-tuned on Full AudioSet at each fraction; the 1% column is the Balanced set itself.
    c.base = config_lib.load_config_file("eval_finetune_cfL.py:audioset")
    c.balanced = config_lib.load_config_file("eval_finetune_cfL.py:audioset_balanced")
    c.label_fractions = ml_collections.ConfigDict(
        dict(
            labels=tuple(LABEL_FRACTIONS),
            percents=tuple(LABEL_FRACTIONS.values()),
            balanced_percent=1,
            arms=("pretrained", "scratch"),
            pretrained=f"train:{config_lib.repo_path('configs/pretrain_cfL.py')}",
        )
    )
    return c

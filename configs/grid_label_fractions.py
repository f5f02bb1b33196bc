"""Table 1 of Srivastava et al. (2022): AudioSet mAP of cf_L with and without pre-training
for 1% (the Balanced set), 3%, 10%, 30% and 100% of Full AudioSet's labelled clips.

    python -m audiossl_jax.main --config=configs/grid_label_fractions.py --workdir=runs/table1 \
        --config.label_fractions.pretrained=runs/cfL

``label_fractions.pretrained`` is a pre-training run directory, or (the default)
``train:configs/pretrain_cfL.py`` to pre-train it into ``<workdir>/encoders/pretrained``.
Variants: '' (the paper's) or 'smoke' (built-in data, seconds).
"""

from audiossl_jax import config_grids


def get_config(variant: str = ""):
    return config_grids.label_fractions_config(variant)

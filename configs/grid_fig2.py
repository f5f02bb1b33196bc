"""Fig. 2 of Srivastava et al. (2022): amount of pre-training data, conformer blocks and
attention heads, each varied alone around cf_L; every point pre-trained, then fine-tuned
on Full and Balanced AudioSet (test mAP).

    python -m audiossl_jax.main --config=configs/grid_fig2.py --workdir=runs/fig2

Variants: '' (the paper's) or 'smoke' (the smoke model on built-in data).
"""

from audiossl_jax import config_grids


def get_config(variant: str = ""):
    return config_grids.ablation_config(variant)

"""Fig. 2 of Srivastava et al. (2022): amount of pre-training data, conformer blocks and
attention heads, each varied alone around cf_L; every point pre-trained, then fine-tuned
on Full and Balanced AudioSet (test mAP).

    python -m audiossl_jax.main --config=configs/grid_fig2.py --workdir=runs/fig2

Variants: '' (the paper's) or 'smoke' (the smoke model on built-in data).
"""

import ml_collections

from audiossl_jax import config_grids, config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_grids.grid_config("ablation", "mAP")
    if variant == "smoke":
        c.metric = "accuracy"
        c.pretrain = config_lib.load_config_file("pretrain_cfS.py:smoke")
        c.downstream = ml_collections.ConfigDict(dict(tiny=config_lib.load_config_file("eval_finetune_cfS.py:smoke")))
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
    c.pretrain = config_lib.load_config_file("pretrain_cfL.py")
    c.downstream = ml_collections.ConfigDict(
        dict(
            full=config_lib.load_config_file("eval_finetune_cfL.py:audioset"),
            balanced=config_lib.load_config_file("eval_finetune_cfL.py:audioset_balanced"),
        )
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

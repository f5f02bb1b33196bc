"""Fine-tuning the cf_L conformer (88.1M parameters; Srivastava et al., 2022) on a downstream task.

    python -m audiossl_jax.main --config=configs/eval_finetune_cfL.py:audioset \
        --workdir=runs/ft_as_L --config.task.pretrained_workdir=runs/cfL

The same variants as configs/eval_finetune_cfS.py (listed in audiossl_jax/config_finetune.py),
on the cf_L model keys so a cf_L pre-training checkpoint loads.
"""

from audiossl_jax import config_finetune


def get_config(variant: str = ""):
    return config_finetune.variant_config("L", variant)

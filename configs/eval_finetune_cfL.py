"""Fine-tuning the cf_L conformer (88.1M parameters; Srivastava et al., 2022) on a downstream task.

    python -m audiossl_jax.main --config=configs/eval_finetune_cfL.py:audioset \
        --workdir=runs/ft_as_L --config.task.pretrained_workdir=runs/cfL

cf_S's fine-tuning recipe and variants (configs/eval_finetune_cfS.py) on the model keys of
configs/pretrain_cfL.py, so a cf_L pre-training checkpoint loads.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    return config_lib.load_config_file(f"eval_finetune_cfS.py:{variant}", pretrain="pretrain_cfL.py")

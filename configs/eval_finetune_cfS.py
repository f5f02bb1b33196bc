"""Fine-tuning the cf_S conformer (18.4M parameters; Srivastava et al., 2022) on a downstream task.

    python -m audiossl_jax.main --config=configs/eval_finetune_cfS.py:audioset_f33 \
        --workdir=runs/ft_as33 --config.task.pretrained_workdir=runs/cfS

Variants (see audiossl_jax/config_finetune.py): the paper's tasks (``audioset``,
``audioset_balanced``, ``fsdkaggle2019_curated``, ``fsdkaggle2019_noisy``, ``esc50``,
``dcase2019_1a``, ``magnatagatune``, ``kinetics700_audio``), small ones that run here
(``synthetic``, ``fsdd_digits``, ``fsdd_speaker``, ``donateacry``, ``smoke``), each
optionally with a label-fraction suffix ``_f<percent>``. Omit
``task.pretrained_workdir`` to train the same model from scratch.
"""

from audiossl_jax import config_finetune


def get_config(variant: str = ""):
    return config_finetune.variant_config("S", variant)

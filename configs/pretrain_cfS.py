"""Conformer wav2vec 2.0 pre-training, cf_S (18.4M parameters, 18.43M here; Srivastava et al., 2022).

    python -m audiossl_jax.main --config=configs/pretrain_cfS.py --workdir=runs/cfS
    python -m audiossl_jax.main --config=configs/pretrain_cfS.py:demo --workdir=runs/demo

Variants: '' (the paper's recipe, 300k steps, on AudioSet: the paper's own ~67k-hour
corpus is in-house), 'demo' (a small model on the built-in synthetic data; a few
minutes on a laptop CPU), 'smoke' (seconds).
"""

from audiossl_jax import config_lib


def get_config(variant: str = ""):
    return config_lib.wav2vec2_pretrain_config("S", variant or None)

"""Conformer wav2vec 2.0 pre-training, cf_L (88.1M parameters, 88.13M here; Srivastava et al., 2022).

    python -m audiossl_jax.main --config=configs/pretrain_cfL.py --workdir=runs/cfL
    python -m audiossl_jax.main --config=configs/pretrain_cfL.py:demo --workdir=runs/demo

Variants: '' (the paper's recipe, 300k steps, on AudioSet: the paper's own ~67k-hour
corpus is in-house), 'demo' (a small model on the built-in synthetic data; a few
minutes on a laptop CPU), 'smoke' (seconds).
"""

from audiossl_jax import config_lib


def get_config(variant: str = ""):
    return config_lib.wav2vec2_pretrain_config("L", variant or None)

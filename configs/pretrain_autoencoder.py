"""Pre-training with the pretext task 'autoencoder' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_autoencoder.py:demo --workdir=runs/autoencoder

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). See docs/pretext_tasks.md.
"""

from audiossl_jax import config_pretext


def get_config(variant: str = ""):
    return config_pretext.pretext_config("autoencoder", variant or None)

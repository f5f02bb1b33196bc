"""Pre-training with the pretext task 'arrow_of_time' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_arrow_of_time.py:demo --workdir=runs/arrow_of_time

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). See docs/pretext_tasks.md.
"""

from audiossl_jax import config_pretext


def get_config(variant: str = ""):
    return config_pretext.pretext_config("arrow_of_time", variant or None)

"""Pre-training with the pretext task 'audio2vec_skipgram' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_audio2vec_sg.py:demo --workdir=runs/audio2vec_sg

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). See docs/pretext_tasks.md.
"""

from audiossl_jax import config_pretext


def get_config(variant: str = ""):
    return config_pretext.pretext_config("audio2vec_skipgram", variant or None)

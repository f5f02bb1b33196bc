"""Pre-training with the pretext task 'audio2vec_skipgram' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_audio2vec_sg.py:demo --workdir=runs/audio2vec_sg

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). The recipe of Audio2Vec CBoW
(configs/pretrain_audio2vec_cbow.py: its rate, context and slices) with the roles swapped:
the middle slice predicts its context. See docs/pretext_tasks.md.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"pretrain_audio2vec_cbow.py:{variant}")
    c.task.name = "audio2vec_skipgram"
    c.model.name = c.model.name.replace("audio2vec_cbow", "audio2vec_skipgram")
    return c

"""Supervised pre-training of the CNN encoder on labels (Tagliasacchi et al., 2020: "an encoder
pre-trained with full-supervision on AudioSet classes"), a row of Table I.

    python -m audiossl_jax.main --config=configs/pretrain_supervised.py --workdir=runs/supervised

Variants: '' (the paper's recipe: AudioSet's 527 classes, multi-hot labels with sigmoid
binary cross-entropy, Adam 1e-4, batch 256, 3M steps; AudioSet must be prepared,
docs/datasets.md), 'demo' (NOT AudioSet: the built-in labelled `synthetic_audio` data,
12 single-label classes with softmax cross-entropy, a narrower encoder, a few minutes on
a laptop CPU), 'smoke' (seconds; `synthetic_audio/tiny`). See docs/pretext_tasks.md.
"""

from audiossl_jax import config_pretext


def get_config(variant: str = ""):
    return config_pretext.pretext_config("supervised", variant or None)

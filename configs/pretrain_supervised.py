"""Supervised pre-training of the CNN encoder on labels (Tagliasacchi et al., 2020: "an encoder
pre-trained with full-supervision on AudioSet classes"), a row of Table I.

    python -m audiossl_jax.main --config=configs/pretrain_supervised.py --workdir=runs/supervised

Variants: '' (the paper's recipe: AudioSet's 527 classes, multi-hot labels with sigmoid
binary cross-entropy, Adam 1e-4, batch 256, 3M steps; AudioSet must be prepared,
docs/datasets.md), 'demo' (NOT AudioSet: the built-in labelled `synthetic_audio` data,
12 single-label classes with softmax cross-entropy, a narrower encoder, a few minutes on
a laptop CPU), 'smoke' (seconds; `synthetic_audio/tiny`). The CNN recipe it shares with
the pretext tasks: configs/common_pretext.py. See docs/pretext_tasks.md.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"common_pretext.py:{variant}", task="supervised")
    c.schedule.peak_learning_rate = 1e-4  # "10^-4 for ... the supervised model"
    c.task.head_hidden = 0  # our choice: a linear head, as the downstream tasks'
    if variant:  # the built-in data's 12 labelled classes stand in for AudioSet's
        c.task.num_classes, c.task.multi_label = 12, False
    else:  # AudioSet's 527 classes, multi-hot labels
        c.task.num_classes, c.task.multi_label = 527, True
        c.data.multi_label = True
    return c

"""Pre-training with the pretext task 'triplet' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_triplet.py:demo --workdir=runs/triplet

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). The CNN recipe it shares with the
other pretext tasks: configs/common_pretext.py. See docs/pretext_tasks.md.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"common_pretext.py:{variant}", task="triplet")
    c.schedule.peak_learning_rate = 1e-4  # "10^-4 for TemporalGap, TripletLoss, ArrowOfTime"
    c.task.margin = 0.1  # our choice: the paper gives none
    return c

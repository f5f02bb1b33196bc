"""Pre-training with the pretext task 'arrow_of_time' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_arrow_of_time.py:demo --workdir=runs/arrow_of_time

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). The CNN recipe it shares with the
other pretext tasks: configs/common_pretext.py. See docs/pretext_tasks.md.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"common_pretext.py:{variant}", task="arrow_of_time")
    c.schedule.peak_learning_rate = 1e-4  # "10^-4 for TemporalGap, TripletLoss, ArrowOfTime"
    c.task.head_hidden = 64  # a single hidden layer of 64, as TemporalGap's
    return c

"""Pre-training with the pretext task 'audio2vec_cbow' on the CNN encoder (Tagliasacchi et al., 2020).

    python -m audiossl_jax.main --config=configs/pretrain_audio2vec_cbow.py:demo --workdir=runs/audio2vec_cbow

Variants: '' (the paper's recipe), 'demo' (a narrower encoder on the built-in synthetic
data; a few minutes on a laptop CPU), 'smoke' (seconds). The CNN recipe it shares with the
other pretext tasks: configs/common_pretext.py; configs/pretrain_audio2vec_sg.py is this
recipe with the skip-gram task. See docs/pretext_tasks.md.
"""

import ml_collections

from audiossl_jax import config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = config_lib.load_config_file(f"common_pretext.py:{variant}", task="audio2vec_cbow")
    c.schedule.peak_learning_rate = 1e-3  # "10^-3 for Audio2Vec, AutoEncoder"
    # "P = 2 slices on each side of the target, and a gap of G = 2 temporal frames".
    c.task.context_slices = 2
    c.task.gap_frames = 2
    if variant == "demo":
        # 5 slices of 48 frames + 4 gaps = 2.48 s fit 70% of the 1-6 s synthetic clips.
        c.task.slice_frames = 48
    elif variant == "smoke":
        c.task.slice_frames = 16
    return c

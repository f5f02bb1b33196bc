"""Config builders of the pretext tasks of Tagliasacchi et al. (2020) on the paper's CNN encoder.

``pretext_config(task, variant)`` is what ``configs/pretrain_<task>.py`` return.
Paper recipe (no variant): 16 kHz log-mels (25 ms / 10 ms, 64 mels, 60-7800 Hz),
slices of 96 frames, the 6-layer CNN with [64, 128, 256, 256, 512, 512] channels and
128-d embeddings, Adam (no weight decay, constant rate: 1e-3 for Audio2Vec and the
AutoEncoder, 1e-4 for the others), batch 256, "we stop training after 3 million
iterations". Every task pre-trains on AudioSet; the supervised one on its 527 classes
(multi-hot labels, sigmoid cross-entropy).
"""

from __future__ import annotations

import ml_collections

from audiossl_jax import config_lib, frontend
from audiossl_jax.data import pipeline
from audiossl_jax.models.cnn import PAPER_CHANNELS

# Task name -> the paper's learning rate.
LEARNING_RATES = {
    "audio2vec_cbow": 1e-3,
    "audio2vec_skipgram": 1e-3,
    "autoencoder": 1e-3,
    "temporal_gap": 1e-4,
    "arrow_of_time": 1e-4,
    "triplet": 1e-4,
    "supervised": 1e-4,
}

AUDIOSET_CLASSES = 527
PAPER_STEPS = 3_000_000
DEMO_CHANNELS = (16, 32, 64, 64, 128, 128)
SMOKE_CHANNELS = (4, 8, 8, 8, 16, 16)


def _task_config(name: str) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.name = name
    t.slice_frames = 96
    if name.startswith("audio2vec"):
        t.context_slices = 2
        t.gap_frames = 2
    elif name in ("temporal_gap", "arrow_of_time"):
        t.head_hidden = 64
    elif name == "triplet":
        t.margin = 0.1
    elif name == "supervised":
        t.head_hidden = 0
        t.num_classes = AUDIOSET_CLASSES
        t.multi_label = True
    return t


def pretext_config(task: str, variant: str | None) -> ml_collections.ConfigDict:
    """Pre-training with ``task`` (a key of LEARNING_RATES).

    ``variant``: None (the paper's recipe), 'demo' (a narrower encoder on the built-in
    data, a few minutes on a laptop CPU) or 'smoke' (seconds; for tests).
    """
    if task not in LEARNING_RATES:
        raise ValueError(f"unknown pretext task {task!r}; use one of {sorted(LEARNING_RATES)}.")
    c = config_lib.trainer_config()
    c.total_steps = PAPER_STEPS
    c.batch_size = 256
    c.log_every_steps = 100
    c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.grad_clip_norm = 0.0
    c.schedule.warmup_steps = 0
    c.schedule.final_scale = 1.0
    c.schedule.peak_learning_rate = LEARNING_RATES[task]
    c.checkpoint.every_steps = 5000

    c.frontend = frontend.preset_config_dict("tagliasacchi")
    c.data = pipeline.default_data_config()
    c.data.name = "audioset"
    c.data.crop_seconds = 10.0
    c.data.multi_label = task == "supervised"

    c.model = ml_collections.ConfigDict()
    c.model.name = f"tagliasacchi_cnn_{task}"
    c.model.channels = PAPER_CHANNELS
    c.model.embed_dim = 128
    c.model.batch_norm_momentum = 0.99
    c.model.batch_norm_epsilon = 1e-3

    c.task = _task_config(task)

    if variant in ("demo", "smoke"):
        c.model.name += f"_{variant}"
        c.checkpoint.asynchronous = False
        c.data.multi_label = False
        if task == "supervised":  # the built-in data's 12 labelled classes stand in for AudioSet's
            c.task.num_classes, c.task.multi_label = 12, False
    if variant == "demo":
        c.data.name = "synthetic_audio"
        c.data.crop_seconds = 4.0
        c.total_steps = 300
        c.batch_size = 32
        c.log_every_steps = 25
        c.checkpoint.every_steps = 100
        c.model.channels = DEMO_CHANNELS
        if task.startswith("audio2vec"):
            # 5 slices of 48 frames + 4 gaps = 2.48 s fit 70% of the 1-6 s synthetic clips.
            c.task.slice_frames = 48
    elif variant == "smoke":
        c.data.name = "synthetic_audio/tiny"
        c.data.crop_seconds = 2.0
        c.total_steps = 4
        c.batch_size = 8
        c.log_every_steps = 1
        c.checkpoint.every_steps = 2
        c.model.channels = SMOKE_CHANNELS
        c.model.embed_dim = 16
        c.task.slice_frames = 16 if task.startswith("audio2vec") else 32
    elif variant is not None:
        raise ValueError(f"unknown config variant {variant!r}: use one of '', 'demo', 'smoke'.")
    return c

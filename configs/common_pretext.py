"""The CNN pre-training recipe shared by the pretext tasks of Tagliasacchi et al. (2020); not a job of its own.

Each ``configs/pretrain_<task>.py`` loads it with its task's name and sets what is its own
(the learning rate, the task's keys):

    c = config_lib.load_config_file(f"common_pretext.py:{variant}", task="triplet")

Paper recipe (no variant): 16 kHz log-mels (25 ms / 10 ms, 64 mels, 60-7800 Hz), slices
of 96 frames, the 6-layer CNN with 128-d embeddings, Adam (no weight decay, a constant
rate), batch 256, "we stop training after 3 million iterations", on AudioSet with its
labels ignored. Variants: 'demo' (a narrower encoder on the built-in data, a few minutes
on a laptop CPU) and 'smoke' (seconds; for tests).
"""

import ml_collections
from ml_collections import config_dict

from audiossl_jax import config_lib, frontend
from audiossl_jax.data import pipeline
from audiossl_jax.models import cnn


def get_config(variant: str = "", *, task: str) -> ml_collections.ConfigDict:
    """The shared recipe of pretext task ``task`` (its ``task.name``, in ``model.name``)."""
    c = config_lib.trainer_config()
    c.total_steps = 3_000_000
    c.batch_size = 256
    c.log_every_steps = 100
    # "Adam optimizer with default hyperparameters": no weight decay, no clipping, a constant rate.
    c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.grad_clip_norm = 0.0
    c.schedule.warmup_steps = 0
    c.schedule.final_scale = 1.0
    c.schedule.peak_learning_rate = config_dict.placeholder(float)  # each task's: its pretrain_<task>.py
    c.checkpoint.every_steps = 5000

    c.frontend = frontend.preset_config_dict("tagliasacchi")
    c.data = pipeline.default_data_config()
    c.data.name = "audioset"
    c.data.crop_seconds = 10.0

    c.model = ml_collections.ConfigDict()
    c.model.name = f"tagliasacchi_cnn_{task}"
    c.model.channels = cnn.PAPER_CHANNELS  # (64, 128, 256, 256, 512, 512)
    c.model.embed_dim = 128
    c.model.batch_norm_momentum = 0.99
    c.model.batch_norm_epsilon = 1e-3

    # "We set N = 96 (corresponding to 975 ms)": the slice every task embeds.
    c.task = ml_collections.ConfigDict()
    c.task.name = task
    c.task.slice_frames = 96

    if variant in ("demo", "smoke"):
        c.model.name += f"_{variant}"
        c.checkpoint.asynchronous = False
    if variant == "demo":
        c.data.name = "synthetic_audio"
        c.data.crop_seconds = 4.0
        c.total_steps = 300
        c.batch_size = 32
        c.log_every_steps = 25
        c.checkpoint.every_steps = 100
        c.model.channels = (16, 32, 64, 64, 128, 128)
    elif variant == "smoke":
        c.data.name = "synthetic_audio/tiny"
        c.data.crop_seconds = 2.0
        c.total_steps = 4
        c.batch_size = 8
        c.log_every_steps = 1
        c.checkpoint.every_steps = 2
        c.model.channels = (4, 8, 8, 8, 16, 16)
        c.model.embed_dim = 16
        c.task.slice_frames = 32
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: use one of '', 'demo', 'smoke'.")
    return c

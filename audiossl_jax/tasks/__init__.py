"""Training objectives. ``get_task(config)`` builds the one named by ``config.task.name``."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from audiossl_jax.tasks import audio2vec
from audiossl_jax.tasks.arrow_of_time import ArrowOfTimeTask
from audiossl_jax.tasks.base import Task
from audiossl_jax.tasks.classification import ClassificationTask
from audiossl_jax.tasks.supervised import SupervisedTask
from audiossl_jax.tasks.temporal_gap import TemporalGapTask
from audiossl_jax.tasks.triplet import TripletTask
from audiossl_jax.tasks.wav2vec2 import Wav2Vec2Task

# config.task.name -> the task it builds.
BUILDERS: dict[str, Callable[[ml_collections.ConfigDict], Task]] = {
    "wav2vec2": Wav2Vec2Task,
    "audio2vec_cbow": audio2vec.cbow,
    "audio2vec_skipgram": audio2vec.skipgram,
    "temporal_gap": TemporalGapTask,
    "autoencoder": audio2vec.AutoEncoderTask,
    "arrow_of_time": ArrowOfTimeTask,
    "triplet": TripletTask,
    "supervised": SupervisedTask,
    "classification": ClassificationTask,
}
TASK_NAMES = tuple(BUILDERS)


def get_task(config: ml_collections.ConfigDict) -> Task:
    """The task named by ``config.task.name``."""
    name = config.task.name
    if name not in TASK_NAMES:
        raise ValueError(f"config.task.name={name!r} is not a known task; use one of {sorted(TASK_NAMES)}.")
    return BUILDERS[name](config)

"""Training objectives. ``get_task(config)`` builds the one named by ``config.task.name``."""

from __future__ import annotations

import ml_collections

from audiossl_jax.tasks.base import Task


def get_task(config: ml_collections.ConfigDict) -> Task:
    """The task named by ``config.task.name``."""
    from audiossl_jax.tasks.wav2vec2 import Wav2Vec2Task

    known = {"wav2vec2": Wav2Vec2Task}
    name = config.task.name
    if name not in known:
        raise ValueError(f"config.task.name={name!r} is not a known task; use one of {sorted(known)}.")
    return known[name](config)

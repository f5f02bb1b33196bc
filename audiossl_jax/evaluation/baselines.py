"""Feature baselines scored by the protocol's linear probe beside the encoders.

``logmel_stats``: the mean and standard deviation over time of a clip's log-mels, [B, 2F]
(the frontend preset ``tagliasacchi``: the CNN encoders' 64 mels). A linear model on these
is the bar a small pre-trained encoder has to clear: on FSDD it beat every encoder of a
10-minute CPU pre-training (issue 15).

A baseline has the ``embed`` method of a ``tasks.base.Task`` (frames [B, 1, D], one valid
frame, its time), so ``embeddings.embed_dataset`` and the protocol's embedding cache
serve it unchanged; it has no parameters (variables ``{}``) and nothing to fine-tune.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from audiossl_jax import frontend

PREFIX = "baseline:"
FRONTEND_PRESET = "tagliasacchi"


def logmel_stats(waveform: jax.Array, length: jax.Array, cfg: frontend.FrontendConfig) -> jax.Array:
    """waveform [B, N], length [B] -> [mean over valid frames [B, F], std over them [B, F]] as [B, 2F].

    Valid frames: ``frontend.frame_mask`` (a clip of length n has n // hop of them); the
    std is the population one, sqrt(E[x^2] - E[x]^2) clamped at 0.
    """
    logmel, valid = frontend.clip_logmel(waveform, length, cfg)
    mean = frontend.masked_time_mean(logmel, valid)
    square = frontend.masked_time_mean(jnp.square(logmel), valid)
    return jnp.concatenate([mean, jnp.sqrt(jnp.maximum(square - jnp.square(mean), 0.0))], axis=-1)


class LogmelStats:
    """``logmel_stats`` as an embedding 'task': ``embed`` -> (frames [B, 1, 2F], valid [B, 1], times [1])."""

    def __init__(self, cfg: frontend.FrontendConfig | None = None):
        self.frontend = cfg or frontend.PRESETS[FRONTEND_PRESET]

    def embed(self, variables: Mapping[str, Any], batch: Mapping[str, jax.Array]) -> tuple[jax.Array, ...]:
        del variables  # no parameters
        stats = logmel_stats(batch["waveform"], batch["length"], self.frontend)
        b = stats.shape[0]
        return stats[:, None, :], jnp.ones((b, 1), bool), jnp.zeros((1,), jnp.float32)


BASELINES = {"logmel_stats": LogmelStats}


def is_baseline(spec: str) -> bool:
    return spec.startswith(PREFIX)


def make(spec: str) -> LogmelStats:
    """The baseline of an encoder spec ``baseline:<name>`` (a key of ``BASELINES``)."""
    name = spec[len(PREFIX) :]
    if name not in BASELINES:
        raise ValueError(f"encoder spec {spec!r}: unknown baseline {name!r}; use one of {sorted(BASELINES)}")
    return BASELINES[name]()

"""What a task gives the trainer: a model, its initialisation and its loss.

A batch is a dict of arrays sharded on the ``data`` mesh axis:
``waveform`` [B, N] float32, ``length`` [B] int32 (valid samples) and ``label`` [B]
int32. The logmel frontend runs inside ``loss``, that is on the device inside the
jitted train step.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiossl_jax import frontend as frontend_lib

Array = jax.Array
Batch = Mapping[str, Array]
Metrics = dict[str, Array]


def unit_norm(x: Array, eps: float = 1e-8) -> Array:
    """x / max(|x|, eps) along the last axis, with finite gradients at x = 0.

    (``jnp.linalg.norm`` has a NaN gradient at zero, which padded slots hit.)
    """
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


class Task(abc.ABC):
    """A training objective: one model, one loss. The trainer owns everything else.

    What callers outside the task may read (every task sets them in ``__init__``):
    ``model``, the Flax module; ``frontend``, the log-mel frontend it runs inside the step;
    ``frames_per_step``, the log-mel frames behind one frame of ``embed`` (the conformer's
    stacking R, or the CNN's slice length).
    """

    model: nn.Module
    frontend: frontend_lib.FrontendConfig
    frames_per_step: int

    @abc.abstractmethod
    def init(self, rng: Array, batch: Batch) -> dict[str, Any]:
        """Returns the model's variables (boxed with logical axis names)."""

    @abc.abstractmethod
    def loss(
        self,
        variables: Mapping[str, Any],
        batch: Batch,
        rng: Array,
        *,
        train: bool,
    ) -> tuple[Array, tuple[Metrics, dict[str, Any]]]:
        """Returns (scalar float32 loss, (metrics, updated non-parameter collections))."""

    def load_pretrained(
        self, params: Any, model_state: dict[str, Any], source: Mapping[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """Merges pretrained variables ``source`` (``{"params": ..., "batch_stats": ...}`` of another
        run, read by ``train.restore``) into freshly initialised ``params`` and non-parameter
        collections ``model_state`` (host trees); returns the (params, model_state) to use.

        The trainer calls it once, when a run with ``config.task.pretrained_workdir`` starts from
        scratch (not on resume). A task that takes no pretrained weights refuses.
        """
        raise ValueError(
            f"config.task.pretrained_workdir is set, but task {type(self).__name__} starts from no "
            "pretrained weights; remove it"
        )

    @abc.abstractmethod
    def embed(self, variables: Mapping[str, Any], batch: Batch) -> tuple[Array, Array, Array]:
        """The encoder's frame embeddings for downstream use (no dropout, no masking).

        Returns frames [B, T, D], their validity [B, T] bool, and the centre time of
        each frame in seconds [T]. Scene embeddings are the masked mean over T.
        """

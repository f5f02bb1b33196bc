"""Pretrained encoders from their checkpoints, and embeddings of whole dataset splits.

A run directory (``workdir``) or an export holds ``config.json`` and the weights
(``train.restore``); the config names the task, so one loader (``inference.load``) serves
every encoder of either paper. Embeddings come
from ``Task.embed``: frames [B, T, D], their validity [B, T] and times [T] (seconds);
the scene embedding is the masked mean of the frames, [B, D].
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiossl_jax import frontend, inference, tasks
from audiossl_jax.data import pipeline, registry
from audiossl_jax.tasks.base import Task
from audiossl_jax.train import sharding, trainer

Array = jax.Array


def init_encoder(config: ml_collections.ConfigDict) -> tuple[Task, dict[str, Any]]:
    """A freshly initialised (untrained) encoder of the run config ``config``: (task, variables), the
    initialisation its run starts from (``trainer.init_variables``), replicated over this machine's devices."""
    config = inference.inference_config(config)
    task = tasks.get_task(config)
    variables = nn.unbox(jax.jit(lambda: trainer.init_variables(task, config))())
    return task, jax.device_put(variables, sharding.replicated(sharding.make_mesh()))


def load_encoder(workdir: str | pathlib.Path, step: int | None = None) -> tuple[Task, dict[str, Any]]:
    """The task and variables saved in ``workdir`` at ``step`` (default: the latest), or those of an
    export directory (``python -m audiossl_jax.export``; it holds its run's one step): ``inference.load``."""
    encoder = inference.load(workdir, step)
    return encoder.task, encoder.variables


def map_split(
    fn: Callable[[Mapping[str, Any], Mapping[str, Array]], Any],
    variables: Mapping[str, Any],
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    batch_size: int,
    mesh: jax.sharding.Mesh,
) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """``fn(variables, batch)`` over every example of ``split`` once (``pipeline.make_eval_iterator``).

    Yields (fn's outputs on the host, the batch's real rows bool [b], their labels) for
    each batch holding a real example; ValueError when the split has none.
    """
    seen = False
    for batch in pipeline.make_eval_iterator(data_cfg, split, batch_size=batch_size):
        rows = batch.pop("valid")
        if not rows.any():
            continue
        seen = True
        yield jax.device_get(fn(variables, sharding.global_batch(batch, mesh))), rows, batch["label"][rows]
    if not seen:
        raise ValueError(f"dataset {data_cfg.name!r} split {split!r} has no examples")


EmbedFn = Callable[[Mapping[str, Any], Mapping[str, Array]], tuple[Array, Array, Array, Array]]


def embed_fn(task: Task) -> EmbedFn:
    """The jitted forward of ``task.embed``: (variables, batch) -> (scene [B, D] float32, frames [B, T, D],
    valid [B, T], times [T]). Build it once and pass it to every ``embed_dataset`` call of the same
    encoder: it compiles once per batch shape, so splits embedded with the same crop and batch size share it."""

    @jax.jit
    def embed(v: Mapping[str, Any], batch: Mapping[str, Array]) -> tuple[Array, Array, Array, Array]:
        frames, valid, times = task.embed(v, batch)
        return frontend.masked_time_mean(frames.astype(jnp.float32), valid), frames, valid, times

    return embed


def embed_dataset(
    task: Task,
    variables: Mapping[str, Any],
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    batch_size: int,
    keep_frames: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    fn: EmbedFn | None = None,
) -> dict[str, np.ndarray]:
    """Embeds every example of ``split`` exactly once (``pipeline.make_eval_iterator``).

    Returns ``scene`` [N, D] float32, ``label`` [N] int32 (or multi-hot [N, C] float32 for multi-label data) and, with ``keep_frames``,
    ``frames`` [N, T, D], ``frame_valid`` [N, T] bool and ``times`` [T] seconds.
    ``progress(done_examples, total_or_None)`` is called after each batch. ``fn``: the
    ``embed_fn(task)`` to reuse across splits (default: a new one, compiled on first use).
    """
    mesh = sharding.make_mesh()
    sharding.check_batch_size(batch_size, mesh)
    total = registry.get_dataset_info(data_cfg, split).num_examples
    embed = embed_fn(task) if fn is None else fn

    out: dict[str, list[np.ndarray]] = {"scene": [], "label": [], "frames": [], "frame_valid": []}
    times, done = None, 0
    for (scene, frames, valid, times), rows, label in map_split(  # noqa: B007 (times: read after the loop)
        embed, variables, data_cfg, split, batch_size=batch_size, mesh=mesh
    ):
        out["scene"].append(scene[rows])
        out["label"].append(label)
        if keep_frames:
            out["frames"].append(np.asarray(frames[rows], np.float32))
            out["frame_valid"].append(valid[rows])
        done += int(rows.sum())
        if progress is not None:
            progress(done, total)
    result = {"scene": np.concatenate(out["scene"]).astype(np.float32), "label": np.concatenate(out["label"])}
    if keep_frames:
        result.update(
            frames=np.concatenate(out["frames"]),
            frame_valid=np.concatenate(out["frame_valid"]),
            times=np.asarray(times, np.float32),
        )
    return result


# Data config keys that choose a split's labels or the training examples drawn from it, not
# its audio: embeddings of one split are shared by every setting of these.
LABEL_KEYS = frozenset(
    {
        "label_key",
        "multi_label",
        "label_separator",
        "class_names",
        "class_balanced",
        "train_fraction",
        "train_size",
        "subset_seed",
        "train_split",
        "eval_split",
    }
)


def audio_fingerprint(data_cfg: ml_collections.ConfigDict) -> str:
    """A hash of every data config key but ``LABEL_KEYS``: what decides a split's audio and its crop."""
    audio = {k: v for k, v in data_cfg.to_dict().items() if k not in LABEL_KEYS}
    return hashlib.sha1(json.dumps(audio, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_scene_embeddings(
    cache_dir: pathlib.Path,
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    encoder: Callable[[], tuple[Task, Mapping[str, Any]]],
    batch_size: int,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scene embeddings [N, D] of ``split`` and its labels under ``data_cfg``'s label column
    ([N] class indices, or multi-hot [N, C]).

    The embeddings live in ``cache_dir/<audio_fingerprint>/<split>.npz`` (``scene``, and
    ``key`` [N]: ``Source.keys``), independent of the label keys, so every label column of
    one folder reuses one embedding of the split. ``cache_dir`` names the encoder and its
    step. When the file lacks an example of the split, ``encoder()`` -> (task, variables)
    is called and the split embedded again (``embed_dataset``), its rows merged into the file.
    """
    src, _ = registry.load_source(data_cfg, split)
    if not len(src):
        raise ValueError(f"dataset {data_cfg.name!r} split {split!r} has no examples")
    if len(src.keys) != len(src):
        raise ValueError(f"dataset {data_cfg.name!r} split {split!r} gives no example keys to cache embeddings by")
    labels = np.stack([src.label_array(i) for i in range(len(src))])
    path = cache_dir / audio_fingerprint(data_cfg) / f"{split.replace('/', '_')}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as f:
            cached = dict(zip(f["key"].tolist(), f["scene"]))
    if not all(k in cached for k in src.keys):
        task, variables = encoder()
        out = embed_dataset(task, variables, data_cfg, split, batch_size=batch_size, progress=progress)
        cached.update(zip(src.keys, out["scene"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, key=np.asarray(list(cached), str), scene=np.stack(list(cached.values())))
        tmp.replace(path)
    return np.stack([cached[k] for k in src.keys]).astype(np.float32), labels


class ProgressLog:
    """``progress`` callback that logs items done (``unit``: examples, files), items/s and the ETA every ``every`` s."""

    def __init__(self, what: str, every: float = 5.0, unit: str = "examples"):
        self.what, self.every, self.unit = what, every, unit
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = f", ETA {(total - done) / rate:.0f} s" if total else ""
        of = f"/{total}" if total else ""
        logging.info("%s: %d%s %s, %.1f %s/s%s", self.what, done, of, self.unit, rate, self.unit, eta)

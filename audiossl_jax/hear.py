"""The HEAR 2021 common API (Holistic Evaluation of Audio Representations) for any encoder.

    model = load_model("runs/demo")            # a training workdir or an export directory
    emb, ts = get_timestamp_embeddings(audio, model)   # audio [n_sounds, n_samples] in [-1, 1]
    scene = get_scene_embeddings(audio, model)         # [n_sounds, D]

``load_model`` returns a ``tf.Module`` (the validator's TensorFlow path) with
``sample_rate`` (16000), ``scene_embedding_size`` and ``timestamp_embedding_size``.
Audio may be a TensorFlow tensor (the results are then TensorFlow tensors) or anything
NumPy converts (the results are NumPy arrays), of any length: it is cut into windows of
the training crop and batched (``inference.embed_sounds``), so nothing is truncated.
Timestamps are in milliseconds, the centre of the samples each frame's input covers,
evenly spaced by the embedding step (80 ms for the conformer, 975 ms for the paper's
CNN). The scene embedding is the mean of the sound's timestamp embeddings.
See docs/hear.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from audiossl_jax import inference  # noqa: E402


class HearModel(tf.Module):
    """An :class:`inference.Encoder` with the attributes the HEAR API asks for."""

    def __init__(self, encoder: inference.Encoder, batch_windows: int = inference.DEFAULT_BATCH_WINDOWS):
        super().__init__(name="audiossl_jax_hear")
        self.encoder = encoder
        self.batch_windows = batch_windows
        self.sample_rate = encoder.sample_rate
        self.scene_embedding_size = encoder.embedding_size
        self.timestamp_embedding_size = encoder.embedding_size


def load_model(model_file_path: str = "", *, batch_windows: int = inference.DEFAULT_BATCH_WINDOWS) -> HearModel:
    """The encoder of a training workdir (latest checkpoint) or of an export directory."""
    if not model_file_path:
        raise ValueError(
            "load_model needs model_file_path: a training workdir or an export directory "
            "(python -m audiossl_jax.export)"
        )
    return HearModel(inference.load(model_file_path), batch_windows)


def _as_numpy(audio: Any, model: HearModel) -> np.ndarray:
    """audio [n_sounds, n_samples] (TF tensor or array-like) -> float32 NumPy; ValueError when malformed."""
    x = audio.numpy() if isinstance(audio, tf.Tensor) else np.asarray(audio)
    if x.ndim != 2:
        raise ValueError(
            f"audio has shape {x.shape}; the HEAR API takes [n_sounds, n_samples] at {model.sample_rate} Hz"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio has dtype {x.dtype}; pass floats in [-1, 1]")
    return x.astype(np.float32)


def _like(audio: Any, x: np.ndarray) -> Any:
    return tf.convert_to_tensor(x) if isinstance(audio, tf.Tensor) else x


def get_timestamp_embeddings(audio: Any, model: HearModel) -> tuple[Any, Any]:
    """audio [n_sounds, n_samples] -> (embeddings [n_sounds, n_frames, D] float32, timestamps
    [n_sounds, n_frames] float32 ms)."""
    x = _as_numpy(audio, model)
    sounds = inference.embed_sounds(model.encoder, list(x), batch_windows=model.batch_windows)
    emb = np.stack([s.frames for s in sounds]).astype(np.float32)
    ts = np.stack([s.times * 1000.0 for s in sounds]).astype(np.float32)
    return _like(audio, emb), _like(audio, ts)


def get_scene_embeddings(audio: Any, model: HearModel) -> Any:
    """audio [n_sounds, n_samples] -> [n_sounds, D] float32: the mean of each sound's timestamp embeddings."""
    x = _as_numpy(audio, model)
    sounds = inference.embed_sounds(model.encoder, list(x), batch_windows=model.batch_windows)
    return _like(audio, np.stack([s.scene for s in sounds]).astype(np.float32))

"""Embeddings of raw audio of any length with a trained encoder: the core of the HEAR API,
the export and the folder-embedding command.

``load(path)`` takes a training workdir (its latest checkpoint, or ``step``) or an
exported directory (``audiossl_jax.export``) and returns an :class:`Encoder`, any family
(the conformer of Srivastava et al. 2022, the CNN of Tagliasacchi et al. 2020, or a
fine-tuned run of either). ``embed_sounds`` cuts each sound into windows of the training
crop, rounded down to whole embedding steps, embeds the windows in fixed-size batches
(bounded memory, one compilation per batch size) and joins each sound's frames again:

* a frame ("timestamp embedding") is one embedding step: R = ``model.stack`` stacked
  logmel frames for the conformer (40 ms), one slice of ``task.slice_frames`` frames for
  the CNN (975 ms in the paper);
* its timestamp is the centre of the samples its input covers (``frontend.group_times``:
  a step of g frames covers (g - 1) * hop + win samples), in seconds from the sound's start;
* a sound of N samples has ``N // (g * hop)`` frames (a CNN sound shorter than one slice
  has one, zero-padded, as in ``models.cnn.slice_validity``); a tail shorter than one step
  has no frame of its own;
* the scene embedding is the mean of the sound's frames.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiossl_jax import config_lib, tasks
from audiossl_jax import frontend as frontend_lib
from audiossl_jax.tasks.base import Task
from audiossl_jax.train import restore
from audiossl_jax.train.restore import ModelLoadError  # what ``load`` raises, for callers of this API

Array = jax.Array

DEFAULT_BATCH_WINDOWS = 16


def inference_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The run config on this machine's devices (``restore.local_config``), without
    rematerialisation (a training-memory setting; the forward pass is the same)."""
    config = restore.local_config(config)
    if "remat" in config.model:
        config.model.remat = False
    return config


@dataclasses.dataclass
class Encoder:
    """A trained encoder ready to embed audio; ``source`` says where it came from."""

    task: Task
    variables: dict[str, Any]
    config: ml_collections.ConfigDict
    source: dict[str, Any]
    window_seconds: float | None = None
    _fns: dict[tuple[int, bool], Callable] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def frontend(self) -> frontend_lib.FrontendConfig:
        return self.task.frontend

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.sample_rate)

    @property
    def is_cnn(self) -> bool:
        return "channels" in self.config.model

    @property
    def frames_per_step(self) -> int:
        """Logmel frames per embedding step g: the slice length (CNN) or the stacking R (conformer)."""
        return self.task.frames_per_step

    @property
    def step_samples(self) -> int:
        """Samples between consecutive frames: g * hop."""
        return self.frames_per_step * self.frontend.hop_length

    @property
    def window_samples(self) -> int:
        """Samples per window: the training crop (or ``window_seconds``) rounded down to whole steps."""
        seconds = self.config.data.crop_seconds if self.window_seconds is None else self.window_seconds
        n = frontend_lib.seconds_to_samples(seconds, self.sample_rate) // self.step_samples * self.step_samples
        if n < self.step_samples:
            raise ValueError(
                f"windows of {seconds} s hold no whole embedding step of {self.step_samples} samples; "
                "use longer windows"
            )
        return n

    @property
    def embedding_size(self) -> int:
        """D of the frame and scene embeddings."""
        return int(self._abstract(1, False)[0].shape[-1])

    def frame_times(self, num_frames: int) -> np.ndarray:
        """Centre of each frame's input in seconds [num_frames] float64 (``frontend.group_times``)."""
        cfg, g = self.frontend, self.frames_per_step
        span = (g - 1) * cfg.hop_length + cfg.win_length
        return (np.arange(num_frames) * self.step_samples + span / 2) / cfg.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames of a sound of ``num_samples`` samples (module docstring)."""
        whole = num_samples // self.step_samples
        return max(whole, 1) if self.is_cnn and num_samples >= self.frontend.hop_length else whole

    def _forward(self, layers: bool) -> Callable:
        """(variables, waveform [b, W], length [b]) -> frames [b, T, D], valid [b, T], per-layer [b, T, D_l]."""
        task, cnn = self.task, self.is_cnn

        def run(variables: Mapping[str, Any], waveform: Array, length: Array) -> tuple[Array, Array, list[Array]]:
            captured: list[Array] = []

            def capture(next_fun: Callable, args: Any, kwargs: Any, context: Any) -> Any:
                out = next_fun(*args, **kwargs)
                if context.method_name == "__call__":
                    if cnn and isinstance(context.module, nn.BatchNorm):
                        captured.append(jax.nn.relu(jnp.max(out, axis=(1, 2))))  # global max-pool of the block
                    elif not cnn and type(context.module).__name__ == "ConformerBlock":
                        captured.append(out)
                return out

            batch = {"waveform": waveform, "length": length}
            if layers:
                with nn.intercept_methods(capture):
                    frames, valid, _ = task.embed(variables, batch)
            else:
                frames, valid, _ = task.embed(variables, batch)
            b, t = valid.shape
            outs = [c.reshape(b, t, -1).astype(jnp.float32) for c in captured]
            return frames.astype(jnp.float32), valid, outs

        return jax.jit(run)

    def forward_fn(self, layers: bool) -> Callable:
        key = (self.window_samples, layers)
        if key not in self._fns:
            self._fns[key] = self._forward(layers)
        return self._fns[key]

    def _abstract(self, b: int, layers: bool) -> Any:
        w = self.window_samples
        return jax.eval_shape(
            self.forward_fn(layers),
            self.variables,
            jax.ShapeDtypeStruct((b, w), jnp.float32),
            jax.ShapeDtypeStruct((b,), jnp.int32),
        )

    def embed_windows(
        self, waveform: np.ndarray, length: np.ndarray, *, layers: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """One batch of windows [b, W] float32, length [b] -> frames [b, T, D], valid [b, T], layers."""
        frames, valid, outs = jax.device_get(
            self.forward_fn(layers)(self.variables, jnp.asarray(waveform, jnp.float32), jnp.asarray(length, jnp.int32))
        )
        return np.asarray(frames), np.asarray(valid), [np.asarray(o) for o in outs]


@dataclasses.dataclass
class SoundEmbedding:
    """One sound's frames [T, D] float32, their times [T] seconds and (with layers) per-block [L][T, D_l]."""

    frames: np.ndarray
    times: np.ndarray
    layers: list[np.ndarray]

    @property
    def scene(self) -> np.ndarray:
        """Mean of the frames [D]."""
        return self.frames.mean(axis=0)


def load(path: str | pathlib.Path, step: int | None = None, *, window_seconds: float | None = None) -> Encoder:
    """The encoder of a training workdir (checkpoint ``step``, default the latest) or an export:
    its weights (``restore.restore_variables``) and the one task its config names."""
    path = pathlib.Path(path)
    if not (restore.is_export(path) or (path / restore.CONFIG_FILE).is_file()):
        raise ModelLoadError(
            f"{path}: neither a training workdir (config.json + checkpoints/) nor an export "
            f"({restore.EXPORT_FILE}); pass the directory of a run or of `python -m audiossl_jax.export`"
        )
    run = restore.restore_variables(path, step)
    config = inference_config(run.config)
    if not config_lib.is_cnn(config):
        config_lib.validate_conformer(config.model)  # a run of an older layout is refused by name
    return Encoder(tasks.get_task(config), run.variables, config, run.source, window_seconds)


def _windows(sound: np.ndarray, w: int) -> list[tuple[np.ndarray, int]]:
    """A sound [N] cut into windows of w samples: (samples [<= w], length) per window (at least one)."""
    starts = range(0, max(len(sound), 1), w)
    return [(sound[s : s + w], len(sound[s : s + w])) for s in starts]


def embed_sounds(
    encoder: Encoder, sounds: Sequence[np.ndarray], *, layers: bool = False, batch_windows: int = DEFAULT_BATCH_WINDOWS
) -> list[SoundEmbedding]:
    """Embeds every sound [N_i] float32 in [-1, 1] at ``encoder.sample_rate`` (module docstring).

    Windows of all sounds are batched together, ``batch_windows`` at a time (fewer, a power
    of two, when there are fewer windows). ValueError naming the sound when it is too short
    for one frame.
    """
    for i, s in enumerate(sounds):
        if np.ndim(s) != 1:
            raise ValueError(f"sound {i}: shape {np.shape(s)}, expected one channel [n_samples]")
        if encoder.num_frames(len(s)) == 0:
            raise ValueError(
                f"sound {i}: {len(s)} samples ({len(s) / encoder.sample_rate * 1000:.1f} ms) is shorter "
                f"than one embedding step ({encoder.step_samples} samples); pad it or leave it out"
            )
    w = encoder.window_samples
    jobs = [(i, k, chunk, n) for i, s in enumerate(sounds) for k, (chunk, n) in enumerate(_windows(np.asarray(s), w))]
    b = min(batch_windows, 1 << max(len(jobs) - 1, 0).bit_length())
    per_sound: list[list[tuple[np.ndarray, list[np.ndarray]]]] = [[] for _ in sounds]
    for start in range(0, len(jobs), b):
        chunk = jobs[start : start + b]
        wave = np.zeros((b, w), np.float32)
        length = np.zeros((b,), np.int32)
        for j, (_, _, samples, n) in enumerate(chunk):
            wave[j, :n], length[j] = samples, n
        frames, valid, outs = encoder.embed_windows(wave, length, layers=layers)
        for j, (i, k, _, n) in enumerate(chunk):
            count = int(valid[j].sum()) if k == 0 else min(int(valid[j].sum()), n // encoder.step_samples)
            per_sound[i].append((frames[j, :count], [o[j, :count] for o in outs]))
    result = []
    for parts in per_sound:
        frames = np.concatenate([f for f, _ in parts])
        per_layer = [np.concatenate([o[k] for _, o in parts]) for k in range(len(parts[0][1]))]
        result.append(SoundEmbedding(frames, encoder.frame_times(len(frames)), per_layer))
    return result

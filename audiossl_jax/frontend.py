"""On-device log-mel frontend: waveform [B, N] -> log-mel [B, T, F], in pure jax.numpy.

Conventions (other modules rely on them):

* Framing. A clip of N samples has exactly ``T = N // hop_length`` frames (10 s at 16 kHz
  with a 320-sample hop gives 500 frames). Frame t covers samples
  ``[t * hop_length, t * hop_length + win_length)`` of the waveform right-padded with zeros
  as far as needed. There is no centring and no reflection padding; trailing samples that do
  not fill a whole hop produce no frame.
* Validity. With per-clip valid lengths, frame t is valid iff its whole hop lies inside the
  clip: ``(t + 1) * hop_length <= length`` (see :func:`frame_mask`). A clip of length N thus
  has exactly ``N // hop_length`` valid frames. Valid frames do not depend on what follows
  the clip in a zero-padded batch: a window reaching past ``length`` reads zeros there,
  exactly as it does on the clip alone.
* Window. A periodic ("DFT-even") Hann window of ``win_length`` samples,
  ``w[n] = 0.5 - 0.5 cos(2 pi n / win_length)`` (``scipy.signal.get_window('hann', win,
  fftbins=True)``); ``window='hamming'`` gives ``0.54 - 0.46 cos(2 pi n / win_length)``.
  The windowed frame is zero-padded to ``n_fft`` before the FFT. librosa centres the
  window inside the ``n_fft`` frame; where the zeros go changes only the phase of the
  spectrum, never the power, so the two agree exactly on everything computed here.
* Spectrum. ``|rfft(frame * w, n_fft)| ** power`` (librosa's ``power``): 2.0, the power
  spectrum, by default and for the conformer preset; 1.0, the magnitude, for the
  tagliasacchi preset ("we compute the logarithm of the modulus of the spectrogram").
  No scaling by the window sum or by ``n_fft``. Bins ``0 .. n_fft // 2`` (``n_fft // 2 + 1`` of them).
* Mel filterbank. Triangular filters whose ``n_mels + 2`` edge/centre frequencies are equally
  spaced on the mel scale between ``fmin`` and ``fmax``; each filter rises linearly in Hz
  from its lower edge to its centre and falls to its upper edge (the construction of
  Slaney's Auditory Toolbox, as in ``librosa.filters.mel``). Two mel scales:
  ``'htk'``: ``mel = 2595 log10(1 + f / 700)`` (HTK Book), and ``'slaney'``: linear
  ``f / (200 / 3)`` below 1 kHz and logarithmic above, with 27 steps per factor 6.4
  (Slaney 1998, librosa's default). ``mel_norm='slaney'`` scales each filter by
  ``2 / (f_upper - f_lower)`` so that it has unit area in Hz (constant energy per channel);
  ``mel_norm='none'`` leaves peaks at 1. The filterbank is built once per config in
  NumPy float64 and enters the trace as a float32 constant.
* Log. ``logmel = log(mel_power + log_offset)``, natural log (``mel_power``: the mel-weighted
  spectrum at the config's ``power``). ``log_offset`` defaults to
  1e-6: digital silence maps to log(1e-6) ~ -13.8, while for unit-scaled waveforms white
  noise of RMS 1e-3 (-60 dB) gives a median mel power of ~4e-4 (tagliasacchi) to ~2e-3
  (conformer) per channel and a full-scale sine ~1e4-1e5 in its channel, so the offset
  only compresses near-silence.
* Dtype. Everything is computed in float32. Floating inputs of any width are cast to
  float32 and read as amplitudes in [-1, 1]; int16 inputs are PCM and are scaled by
  1 / 32768 first (exact in float32); other integer dtypes are rejected. The mel matmul
  uses ``Precision.HIGHEST`` so that accelerators do not drop to TF32/bf16 passes.

librosa equivalence: for a clip y of N samples, ``mel_power(y[None], cfg)[0]`` equals
``librosa.feature.melspectrogram(y=z, sr=sample_rate, n_fft=n_fft, hop_length=hop_length,
win_length=win_length, window=window, center=False, power=power, n_mels=n_mels, fmin=fmin,
fmax=fmax, htk=(mel_scale == 'htk'), norm=('slaney' if mel_norm == 'slaney' else None)).T[:T]``
where ``z`` is y left-padded with ``(n_fft - win_length) // 2`` zeros (librosa's window
offset inside its n_fft frame) and right-padded with enough zeros to give T frames.
``tests/test_frontend.py`` checks this to 1e-4 relative error (float32 against float64).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = ("none", "slaney")
WINDOWS = ("hann", "hamming")

_INT_FIELDS = ("sample_rate", "win_length", "hop_length", "n_fft", "n_mels")
_FLOAT_FIELDS = ("fmin", "fmax", "log_offset", "power")
_STR_FIELDS = {"mel_scale": MEL_SCALES, "mel_norm": MEL_NORMS, "window": WINDOWS}


def _hz_to_mel(hz: np.ndarray, scale: str) -> np.ndarray:
    """Hz -> mel on the HTK or Slaney scale, float64."""
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp = 200.0 / 3.0
    brk_hz = 1000.0
    brk_mel = brk_hz / f_sp
    log_step = math.log(6.4) / 27.0
    above = brk_mel + np.log(np.maximum(hz, brk_hz) / brk_hz) / log_step
    return np.where(hz >= brk_hz, above, hz / f_sp)


def _mel_to_hz(mel: np.ndarray, scale: str) -> np.ndarray:
    """Inverse of _hz_to_mel, float64."""
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp = 200.0 / 3.0
    brk_hz = 1000.0
    brk_mel = brk_hz / f_sp
    log_step = math.log(6.4) / 27.0
    above = brk_hz * np.exp(log_step * (np.maximum(mel, brk_mel) - brk_mel))
    return np.where(mel >= brk_mel, above, mel * f_sp)


def _filterbank_f64(cfg: FrontendConfig) -> np.ndarray:
    """Mel filterbank [n_fft // 2 + 1, n_mels] in float64 (see module docstring)."""
    bin_hz = np.arange(cfg.n_fft // 2 + 1, dtype=np.float64) * (cfg.sample_rate / cfg.n_fft)
    mel_edges = np.linspace(_hz_to_mel(cfg.fmin, cfg.mel_scale), _hz_to_mel(cfg.fmax, cfg.mel_scale), cfg.n_mels + 2)
    hz_edges = _mel_to_hz(mel_edges, cfg.mel_scale)
    lower, centre, upper = hz_edges[:-2], hz_edges[1:-1], hz_edges[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if cfg.mel_norm == "slaney":
        weights = weights * (2.0 / (upper - lower))
    return weights


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """Static, hashable log-mel settings (usable as a ``jax.jit`` static argument).

    Attributes:
      sample_rate: Hz of the input waveform.
      win_length: analysis window length in samples (<= n_fft).
      hop_length: frame step in samples; T = N // hop_length.
      n_fft: FFT size (zero-padding of the windowed frame); n_fft // 2 + 1 bins.
      n_mels: number of mel channels F.
      fmin: lower edge of the lowest mel filter in Hz (>= 0).
      fmax: upper edge of the highest mel filter in Hz (<= sample_rate / 2).
      mel_scale: 'htk' or 'slaney'.
      log_offset: added to the mel power before the natural log (> 0).
      mel_norm: 'none' (peak 1) or 'slaney' (unit area per filter).
      window: 'hann' or 'hamming', periodic.
      power: exponent of the spectrum's modulus before the mel weighting (> 0): 2.0 power,
        1.0 magnitude (librosa's ``power``).
    """

    sample_rate: int
    win_length: int
    hop_length: int
    n_fft: int
    n_mels: int
    fmin: float
    fmax: float
    mel_scale: str
    log_offset: float = 1e-6
    mel_norm: str = "none"
    window: str = "hann"
    power: float = 2.0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"FrontendConfig.{name}={value!r}: must be an int")
            if value <= 0:
                raise ValueError(f"FrontendConfig.{name}={value!r}: must be > 0")
            object.__setattr__(self, name, int(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"FrontendConfig.{name}={value!r}: must be a real number")
            if not math.isfinite(value):
                raise ValueError(f"FrontendConfig.{name}={value!r}: must be finite")
            object.__setattr__(self, name, float(value))
        for name, allowed in _STR_FIELDS.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"FrontendConfig.{name}={value!r}: must be one of {allowed}")
        if self.win_length > self.n_fft:
            raise ValueError(f"FrontendConfig.win_length={self.win_length}: must be <= n_fft={self.n_fft}")
        nyquist = self.sample_rate / 2
        if self.fmin < 0:
            raise ValueError(f"FrontendConfig.fmin={self.fmin}: must be >= 0")
        if self.fmax > nyquist:
            raise ValueError(f"FrontendConfig.fmax={self.fmax}: must be <= sample_rate / 2 = {nyquist}")
        if self.fmin >= self.fmax:
            raise ValueError(f"FrontendConfig.fmin={self.fmin}: must be < fmax={self.fmax}")
        if self.log_offset <= 0:
            raise ValueError(f"FrontendConfig.log_offset={self.log_offset}: must be > 0")
        if self.power <= 0:
            raise ValueError(f"FrontendConfig.power={self.power}: must be > 0 (2.0 power, 1.0 magnitude)")
        empty = np.flatnonzero(_filterbank_f64(self).max(axis=0) <= 0)
        if empty.size:
            raise ValueError(
                f"FrontendConfig.n_mels={self.n_mels}: mel filters {empty.tolist()} contain no "
                f"FFT bin (bin spacing {self.sample_rate / self.n_fft:.2f} Hz over "
                f"{self.fmin}-{self.fmax} Hz); use fewer mels or a larger n_fft"
            )

    @classmethod
    def from_config(cls, cfg: Any, prefix: str = "config.frontend") -> FrontendConfig:
        """Builds a config from a ConfigDict or mapping with the field names as keys.

        Unknown keys, missing keys without a default and bad values raise ValueError naming
        ``<prefix>.<key>``.
        """
        if isinstance(cfg, ml_collections.ConfigDict):
            values = cfg.to_dict()
        elif isinstance(cfg, Mapping):
            values = dict(cfg)
        else:
            raise ValueError(f"{prefix}: expected a ConfigDict or mapping, got {type(cfg)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ValueError(f"unknown key {prefix}.{key}; allowed keys: {sorted(fields)}")
        for name, field in fields.items():
            if name not in values and field.default is dataclasses.MISSING:
                raise ValueError(f"missing key {prefix}.{name}")
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(str(e).replace("FrontendConfig.", f"{prefix}.", 1)) from e

    def to_config_dict(self) -> ml_collections.ConfigDict:
        """The fields as an ml_collections ConfigDict (round-trips through from_config)."""
        return ml_collections.ConfigDict(dataclasses.asdict(self))


PRESETS: dict[str, FrontendConfig] = {
    # Srivastava et al. 2022, conformer wav2vec 2.0 on logmels: 64 ms / 20 ms at 16 kHz,
    # 64 mels. The paper does not pin the mel variant or band: full band 0-8 kHz, HTK scale
    # and unnormalised filters, the same mel conventions as the tagliasacchi preset.
    "conformer": FrontendConfig(
        sample_rate=16000,
        win_length=1024,
        hop_length=320,
        n_fft=1024,
        n_mels=64,
        fmin=0.0,
        fmax=8000.0,
        mel_scale="htk",
    ),
    # Tagliasacchi et al. 2020 (Audio2Vec, TemporalGap): 25 ms / 10 ms at 16 kHz, 512-point
    # FFT, 64 mels over 60-7800 Hz, HTK scale and no area normalisation (as tf.signal does);
    # "the logarithm of the modulus of the spectrogram": mel-weighted magnitudes (power 1).
    "tagliasacchi": FrontendConfig(
        sample_rate=16000,
        win_length=400,
        hop_length=160,
        n_fft=512,
        n_mels=64,
        fmin=60.0,
        fmax=7800.0,
        mel_scale="htk",
        power=1.0,
    ),
}


def preset_config_dict(name: str) -> ml_collections.ConfigDict:
    """Preset ``name`` (a key of PRESETS) as a fresh, overridable ConfigDict."""
    if name not in PRESETS:
        raise ValueError(f"unknown frontend preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name].to_config_dict()


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    """Samples in ``seconds`` of audio: round(seconds * sample_rate) (a crop's N)."""
    return int(round(seconds * sample_rate))


def crop_frames(crop_seconds: float, cfg: FrontendConfig) -> int:
    """Frames of a crop of ``crop_seconds``: ``num_frames(seconds_to_samples(...))``."""
    return num_frames(seconds_to_samples(crop_seconds, cfg.sample_rate), cfg)


def num_frames(num_samples: int, cfg: FrontendConfig) -> int:
    """Frames for a clip of ``num_samples`` samples: ``num_samples // hop_length``."""
    if num_samples < 0:
        raise ValueError(f"num_samples={num_samples}: must be >= 0")
    return int(num_samples) // cfg.hop_length


def frame_mask(lengths: jax.Array, num_frames: int, cfg: FrontendConfig) -> jax.Array:
    """Valid-frame mask: lengths [B] int, -> [B, T] bool with T = num_frames.

    Frame t is valid iff ``(t + 1) * hop_length <= length``, i.e. its whole hop lies in the
    clip, so a clip of length N has exactly ``N // hop_length`` valid frames.
    """
    lengths = jnp.asarray(lengths)
    ends = (jnp.arange(num_frames, dtype=jnp.int32) + 1) * cfg.hop_length
    return ends <= lengths[..., None]


def masked_time_mean(x: jax.Array, valid: jax.Array, keepdims: bool = False) -> jax.Array:
    """Mean over the valid frames: x [B, T, D], valid [B, T] -> [B, D] ([B, 1, D] with keepdims); 0 when none is."""
    w = valid.astype(x.dtype)[..., None]
    return (x * w).sum(axis=1, keepdims=keepdims) / jnp.maximum(w.sum(axis=1, keepdims=keepdims), 1.0)


@functools.lru_cache(maxsize=32)
def _filterbank_f32(cfg: FrontendConfig) -> np.ndarray:
    """Cached read-only float32 filterbank [n_fft // 2 + 1, n_mels] for the traced matmul."""
    fb = _filterbank_f64(cfg).astype(np.float32)
    fb.flags.writeable = False
    return fb


def mel_filterbank(cfg: FrontendConfig, dtype: Any = np.float32) -> np.ndarray:
    """Mel filterbank [n_fft // 2 + 1, n_mels] (transpose of ``librosa.filters.mel``)."""
    return _filterbank_f64(cfg).astype(dtype)


@functools.lru_cache(maxsize=32)
def _window(cfg: FrontendConfig) -> np.ndarray:
    """Periodic analysis window [win_length], float32."""
    phase = 2.0 * np.pi * np.arange(cfg.win_length, dtype=np.float64) / cfg.win_length
    a0 = 0.5 if cfg.window == "hann" else 0.54
    w = (a0 - (1.0 - a0) * np.cos(phase)).astype(np.float32)
    w.flags.writeable = False
    return w


def _to_float32(waveform: jax.Array) -> jax.Array:
    """float of any width -> float32; int16 PCM -> float32 scaled by 1 / 32768."""
    waveform = jnp.asarray(waveform)
    if waveform.dtype == jnp.int16:
        return waveform.astype(jnp.float32) * (1.0 / 32768.0)
    if not jnp.issubdtype(waveform.dtype, jnp.floating):
        raise TypeError(f"waveform dtype {waveform.dtype} not supported: pass floats in [-1, 1] or int16 PCM")
    return waveform.astype(jnp.float32)


def frames(waveform: jax.Array, cfg: FrontendConfig) -> jax.Array:
    """Unwindowed frames: waveform [..., N] -> [..., T, win_length] float32, T = N // hop.

    The waveform is cut into hop-sized chunks and each frame is the concatenation of the
    ceil(win / hop) chunks starting at its own, truncated to win_length: static slices and
    one concatenate, no gather, so it lowers to cheap copies on GPU/TPU.
    """
    x = _to_float32(waveform)
    n = x.shape[-1]
    hop, win = cfg.hop_length, cfg.win_length
    t = n // hop
    k = -(-win // hop)
    total = (t + k - 1) * hop
    x = x[..., : min(n, total)]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, total - x.shape[-1])]
    chunks = jnp.pad(x, pad).reshape(*x.shape[:-1], t + k - 1, hop)
    stacked = jnp.concatenate([chunks[..., i : i + t, :] for i in range(k)], axis=-1)
    return stacked[..., :win]


@functools.partial(jax.jit, static_argnames="cfg")
def mel_power(waveform: jax.Array, cfg: FrontendConfig) -> jax.Array:
    """Mel-weighted ``|STFT| ** cfg.power`` before the log: waveform [B, N] -> [B, T, F] float32.

    Any leading shape works ([..., N] -> [..., T, F]). Jitted with cfg static; it can also
    be wrapped in jax.jit(..., static_argnums=1) or called inside other jitted code.
    """
    windowed = frames(waveform, cfg) * jnp.asarray(_window(cfg))
    spectrum = jnp.fft.rfft(windowed, n=cfg.n_fft, axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    if cfg.power != 2.0:
        power = power ** (0.5 * cfg.power)
    return jnp.matmul(power, jnp.asarray(_filterbank_f32(cfg)), precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.jit, static_argnames="cfg")
def logmel(waveform: jax.Array, cfg: FrontendConfig) -> jax.Array:
    """Log-mel features: waveform [B, N] -> ``log(mel_power + log_offset)`` [B, T, F] float32."""
    return jnp.log(mel_power(waveform, cfg) + cfg.log_offset)


def clip_logmel(waveform: jax.Array, length: jax.Array, cfg: FrontendConfig) -> tuple[jax.Array, jax.Array]:
    """Logmels of zero-padded clips: waveform [B, N], length [B] -> ([B, T, F], frame mask [B, T]).

    Samples past each clip's ``length`` are zeroed first, so whatever the padding holds
    never reaches the last valid frames (whose windows reach past the clip's end).
    """
    in_clip = jnp.arange(waveform.shape[-1])[None, :] < length[:, None]
    features = logmel(jnp.where(in_clip, _to_float32(waveform), 0.0), cfg)
    return features, frame_mask(length, features.shape[1], cfg)


def group_times(num_groups: int, cfg: FrontendConfig, group: int = 1) -> jax.Array:
    """Centre times in seconds [num_groups] of consecutive groups of ``group`` frames.

    Group g covers samples [g * group * hop, g * group * hop + (group - 1) * hop + win).
    """
    span = (group - 1) * cfg.hop_length + cfg.win_length
    starts = jnp.arange(num_groups) * group * cfg.hop_length
    return (starts + span / 2) / cfg.sample_rate

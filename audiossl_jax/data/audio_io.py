"""Decoding audio files with soundfile: mono float32 at a target rate, with checks.

`read_audio` decodes WAV, FLAC (and whatever else libsndfile reads, e.g. MP3, OGG),
mixes channels to mono by averaging and resamples with a polyphase filter
(`scipy.signal.resample_poly`, Kaiser window). `inspect_audio` also reports what
preparation must flag: NaN/Inf samples, silence, other sample rates, multichannel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import soundfile
from scipy import signal

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg")

# A clip whose peak absolute amplitude is below this is silent (-100 dBFS).
SILENCE_PEAK = 1e-5


class AudioDecodeError(ValueError):
    """One file cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What decoding one file found: original rate, channels and length at the target rate."""

    sample_rate: int
    channels: int
    num_samples: int


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """Length of ``resample`` output: ceil(n * to_rate / from_rate) (exact integer arithmetic)."""
    g = math.gcd(int(from_rate), int(to_rate))
    return -(-num_samples * (int(to_rate) // g) // (int(from_rate) // g))


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of float32 [n] -> [resampled_length(n, from_rate, to_rate)]."""
    if from_rate == to_rate:
        return audio
    g = math.gcd(int(from_rate), int(to_rate))
    out = signal.resample_poly(audio.astype(np.float64), int(to_rate) // g, int(from_rate) // g)
    return out.astype(np.float32)


def _decode(path: str) -> tuple[np.ndarray, int]:
    """Raw frames float32 [n, channels], n > 0, and the file's rate; AudioDecodeError when unreadable or empty."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError or TypeError.
        raise AudioDecodeError(f"{path}: not a readable audio file ({e})") from e
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: empty audio file (0 samples)")
    return data, int(rate)


def _mono(data: np.ndarray) -> np.ndarray:
    """Frames [n, channels] -> their channel average [n]."""
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def inspect_audio(path: str, sample_rate: int) -> AudioInfo:
    """What preparation must know of `path`, rejecting unusable audio.

    Raises AudioDecodeError naming the file for: unreadable/non-audio data, 0 samples,
    NaN or Inf samples, and silence (peak below SILENCE_PEAK). Other rates and
    multichannel audio are converted when read (``read_audio``); the AudioInfo says
    what was found and the length at `sample_rate`, computed without resampling.
    """
    data, rate = _decode(path)
    if not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise AudioDecodeError(f"{path}: {bad} NaN/Inf samples")
    mono = _mono(data)
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioDecodeError(f"{path}: silent clip (peak below {SILENCE_PEAK:g})")
    return AudioInfo(sample_rate=rate, channels=int(data.shape[1]),
                     num_samples=resampled_length(len(mono), rate, sample_rate))


def read_audio(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 [n] at `sample_rate`; AudioDecodeError naming the file when unreadable."""
    data, rate = _decode(path)
    return resample(_mono(data), rate, sample_rate)

"""Decoding audio files with soundfile: mono float32 at a target rate, with checks.

`read_audio` decodes every format the installed libsndfile reads (`AUDIO_EXTENSIONS`:
WAV, FLAC, MP3, OGG Vorbis/Opus, AIFF, CAF, ...), mixes channels to mono by averaging
and resamples with a polyphase filter (`scipy.signal.resample_poly`, Kaiser window).
`read_window` decodes only a window of a file (seeking), for crops of long files.
`inspect_audio` also reports what preparation must flag: truncated files, NaN/Inf
samples, float samples outside [-1, 1], silence, clips below a minimum length, other
sample rates, multichannel.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import soundfile
from scipy import signal

# File extensions of the formats libsndfile reads (RAW needs its layout given and MAT
# files are rarely audio: both left out); only those the installed library supports.
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"),
    "AIFF": (".aiff", ".aif", ".aifc"),
    "AU": (".au", ".snd"),
    "CAF": (".caf",),
    "FLAC": (".flac",),
    "MP3": (".mp3",),
    "OGG": (".ogg", ".oga", ".opus"),
    "W64": (".w64",),
    "RF64": (".rf64",),
    "VOC": (".voc",),
    "SD2": (".sd2",),
    "PAF": (".paf",),
    "SVX": (".svx", ".8svx"),
    "NIST": (".nist", ".sph"),
    "HTK": (".htk",),
    "IRCAM": (".sf",),
    "PVF": (".pvf",),
    "XI": (".xi",),
    "AVR": (".avr",),
    "WVE": (".wve",),
    "SDS": (".sds",),
    "MPC2K": (".mpc2k",),
}
AUDIO_EXTENSIONS: tuple[str, ...] = tuple(
    ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in soundfile.available_formats() for ext in exts
)

# Audio containers libsndfile cannot decode: listed as problems with this advice, never skipped silently.
UNSUPPORTED_EXTENSIONS: dict[str, str] = {
    ext: "AAC/ALAC/WMA/... audio"
    for ext in (
        ".m4a",
        ".m4b",
        ".aac",
        ".mp4",
        ".wma",
        ".webm",
        ".mka",
        ".amr",
        ".ape",
        ".wv",
        ".mpc",
        ".ac3",
        ".ra",
        ".3gp",
    )
}

# A clip whose peak absolute amplitude is below this is silent (-100 dBFS).
SILENCE_PEAK = 1e-5

_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioDecodeError(ValueError):
    """One file cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What decoding one file found: original rate, channels, length at the target rate, clipping."""

    sample_rate: int
    channels: int
    num_samples: int
    clipped: bool = False


def unsupported_reason(path: str) -> str:
    """The problem of a file whose extension names a format libsndfile cannot decode."""
    ext = path[path.rfind(".") :].lower()
    return (
        f"{ext} files ({UNSUPPORTED_EXTENSIONS.get(ext, 'this format')}) cannot be decoded by libsndfile "
        f"{soundfile.__libsndfile_version__}; convert them, e.g. ffmpeg -i in{ext} out.flac"
    )


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


def _finish(path: str, audio: np.ndarray, clip: bool) -> np.ndarray:
    """Refuses NaN/Inf (a file changed since it was checked) and clips to [-1, 1] when asked."""
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(
            f"{path}: {int(np.sum(~np.isfinite(audio)))} NaN/Inf samples; the file changed "
            "after preparation, so rerun to check it again"
        )
    return np.clip(audio, -1.0, 1.0) if clip else audio


def inspect_audio(path: str, sample_rate: int, *, clip: bool = False, min_seconds: float = 0.0) -> AudioInfo:
    """What preparation must know of `path`, rejecting unusable audio.

    Raises AudioDecodeError naming the file for: unreadable/non-audio data, 0 samples,
    a truncated file (header longer than the data), NaN or Inf samples, samples outside
    [-1, 1] (unless ``clip``: then they are clipped when read), silence (peak below
    SILENCE_PEAK) and clips shorter than ``min_seconds``. Other rates and multichannel
    audio are converted when read (``read_audio``); the AudioInfo says what was found
    and the length at `sample_rate`, computed without resampling.
    """
    data, rate = _decode(path)
    truncated = _TRUNCATED.search(soundfile.info(path).extra_info)
    if truncated:
        raise AudioDecodeError(
            f"{path}: truncated file (header announces {truncated.group(1)} bytes of audio, "
            f"the file holds {truncated.group(2)})"
        )
    if not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise AudioDecodeError(f"{path}: {bad} NaN/Inf samples")
    peak = float(np.max(np.abs(data)))
    if peak > 1.0 and not clip:
        raise AudioDecodeError(
            f"{path}: samples outside [-1, 1] (peak {peak:.3g}); rescale the file, or set "
            "--config.data.clip_out_of_range=True to clip them"
        )
    mono = _mono(data)
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioDecodeError(f"{path}: silent clip (peak below {SILENCE_PEAK:g})")
    seconds = len(mono) / rate
    if seconds < min_seconds:
        raise AudioDecodeError(f"{path}: clip of {seconds:.3f} s is shorter than data.min_seconds={min_seconds:g}")
    return AudioInfo(
        sample_rate=rate,
        channels=int(data.shape[1]),
        num_samples=resampled_length(len(mono), rate, sample_rate),
        clipped=peak > 1.0,
    )


def read_audio(path: str, sample_rate: int, *, clip: bool = False) -> np.ndarray:
    """Mono float32 [n] at `sample_rate`; AudioDecodeError naming the file when unreadable."""
    data, rate = _decode(path)
    return _finish(path, resample(_mono(data), rate, sample_rate), clip)


def read_window(path: str, sample_rate: int, start: int, count: int, *, clip: bool = False) -> np.ndarray:
    """Samples [start, start + count) of ``read_audio(path, sample_rate)``: float32 [<= count].

    Decodes only that window (seeking), plus the resampling filter's reach on both sides
    when the file is at another rate: the polyphase output is aligned on a block of
    ``up`` output samples, so the window equals the whole file's resampling.
    """
    try:
        with soundfile.SoundFile(path) as f:
            rate = int(f.samplerate)
            if rate == sample_rate:
                f.seek(start)
                return _finish(path, _mono(f.read(count, dtype="float32", always_2d=True)), clip)
            g = math.gcd(rate, int(sample_rate))
            up, down = int(sample_rate) // g, rate // g
            reach = math.ceil(10 * max(up, down) / up) + 1  # input samples of resample_poly's half filter
            first_block = max(start - math.ceil(reach * up / down) - 1, 0) // up
            begin, end = first_block * down, min(-(-(start + count) * down // up) + reach + 1, f.frames)
            f.seek(begin)
            data = f.read(max(end - begin, 0), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError or TypeError.
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({e}); it changed after preparation, so rerun to check it again"
        ) from e
    offset = start - first_block * up
    return _finish(path, resample(_mono(data), rate, sample_rate)[offset : offset + count], clip)

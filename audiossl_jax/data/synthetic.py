"""Built-in procedural audio dataset `synthetic_audio` (TFDS, no download needed).

Every clip is generated from its own integer seed (split base seed + index), so
preparation is deterministic and independent of generation order. Clips are 16 kHz
int16 waveforms from 12 sound classes with random parameters over a low background
noise. The class is `index % 12`, so every class is equally represented.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

SAMPLE_RATE = 16000

CLASS_NAMES: tuple[str, ...] = (
    "pure_tone",
    "chirp_up",
    "chirp_down",
    "harmonic_stack",
    "am_tone",
    "fm_tone",
    "noise_burst",
    "click_train",
    "tone_arpeggio",
    "pink_noise",
    "brown_noise",
    "bird_trill",
)

SPLIT_BASE_SEEDS: dict[str, int] = {"train": 1_000_000, "test": 2_000_000}

_TWO_PI = 2.0 * np.pi


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One draw, uniform in log space between low and high."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _fade(n: int, fade_samples: int) -> np.ndarray:
    """Raised-cosine fade-in/out envelope: [n]."""
    env = np.ones(n)
    k = min(fade_samples, n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        env[:k] = ramp
        env[n - k :] = ramp[::-1]
    return env


def _segment_starts(
    rng: np.random.Generator, n: int, on: tuple[float, float], off: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Random on/off segments covering n samples: (starts [k], lengths [k]) in samples."""
    starts, lengths = [], []
    pos = int(rng.uniform(0.0, off[1]) * SAMPLE_RATE)
    while pos < n:
        length = max(int(rng.uniform(*on) * SAMPLE_RATE), 1)
        starts.append(pos)
        lengths.append(length)
        pos += length + int(rng.uniform(*off) * SAMPLE_RATE)
    if not starts:
        starts, lengths = [0], [n]
    return np.asarray(starts), np.asarray(lengths)


def _segment_position(n: int, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample segment index [n], position within it [n] (samples) and on-mask [n]."""
    idx = np.arange(n)
    seg = np.clip(np.searchsorted(starts, idx, side="right") - 1, 0, len(starts) - 1)
    pos = idx - starts[seg]
    inside = (pos >= 0) & (pos < lengths[seg])
    return seg, pos, inside


def _band_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float) -> np.ndarray:
    """White noise band-limited to [low_hz, high_hz] by an FFT mask: [n], unit std."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    x = np.fft.irfft(spec, n)
    return x / (x.std() + 1e-12)


def _pure_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f = _log_uniform(rng, 250.0, 4000.0)
    return np.sin(_TWO_PI * f * t + rng.uniform(0, _TWO_PI))


def _chirp(rng: np.random.Generator, t: np.ndarray, up: bool) -> np.ndarray:
    f_lo, f_hi = _log_uniform(rng, 150.0, 600.0), _log_uniform(rng, 2000.0, 6000.0)
    f0, f1 = (f_lo, f_hi) if up else (f_hi, f_lo)
    period = rng.uniform(0.4, 1.5)
    tau = np.mod(t, period)
    ratio = np.log(f1 / f0)
    phase = _TWO_PI * f0 * period / ratio * (np.exp(ratio * tau / period) - 1.0)
    env = np.sin(np.pi * tau / period) ** 0.25
    return env * np.sin(phase)


def _harmonic_stack(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f0 = _log_uniform(rng, 90.0, 400.0)
    k = np.arange(1, int(min(24, 7000.0 / f0)) + 1)
    amps = k ** -rng.uniform(0.3, 1.2)
    phases = rng.uniform(0, _TWO_PI, size=len(k))
    grid = np.linspace(0.0, 1.0, 4097)
    table = amps @ np.sin(_TWO_PI * k[:, None] * grid[None, :] + phases[:, None])
    x = np.interp(np.mod(f0 * t, 1.0), grid, table)
    return x * (1.0 - 0.3 * np.sin(_TWO_PI * rng.uniform(0.2, 1.0) * t) ** 2)


def _am_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    fc, fm = _log_uniform(rng, 300.0, 3000.0), rng.uniform(3.0, 15.0)
    depth = rng.uniform(0.8, 1.0)
    env = 1.0 - depth * (0.5 + 0.5 * np.cos(_TWO_PI * fm * t))
    return env * np.sin(_TWO_PI * fc * t)


def _fm_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    fc, fm = _log_uniform(rng, 400.0, 3000.0), rng.uniform(2.0, 10.0)
    deviation = rng.uniform(0.1, 0.3) * fc
    return np.sin(_TWO_PI * fc * t + deviation / fm * np.sin(_TWO_PI * fm * t))


def _noise_burst(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    n = len(t)
    centre = _log_uniform(rng, 400.0, 5000.0)
    half_band = 0.5 * centre * rng.uniform(0.3, 1.0)
    x = _band_noise(rng, n, centre - half_band, centre + half_band)
    starts, lengths = _segment_starts(rng, n, on=(0.05, 0.3), off=(0.1, 0.6))
    seg, pos, inside = _segment_position(n, starts, lengths)
    env = inside * np.sin(np.pi * np.clip(pos / lengths[seg], 0, 1)) ** 0.3
    return env * x


def _click_train(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    n = len(t)
    interval = 1.0 / rng.uniform(4.0, 30.0)
    times = np.arange(rng.uniform(0, interval), n / SAMPLE_RATE, interval)
    times = times + rng.normal(0.0, 0.05 * interval, size=len(times))
    pulses = np.zeros(n)
    pulses[np.clip((times * SAMPLE_RATE).astype(int), 0, n - 1)] = 1.0
    kernel_t = np.arange(int(0.008 * SAMPLE_RATE)) / SAMPLE_RATE
    kernel = rng.standard_normal(len(kernel_t)) * np.exp(-kernel_t / rng.uniform(0.0005, 0.002))
    return np.convolve(pulses, kernel)[:n]


def _tone_arpeggio(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    n = len(t)
    base = _log_uniform(rng, 200.0, 800.0)
    steps = np.array([0, 4, 7, 12, 16, 19, 24]) if rng.random() < 0.5 else np.array([0, 3, 7, 12, 15, 19, 24])
    starts, lengths = _segment_starts(rng, n, on=(0.08, 0.25), off=(0.0, 0.05))
    notes = base * 2.0 ** (steps[rng.integers(0, len(steps), size=len(starts))] / 12.0)
    seg, pos, inside = _segment_position(n, starts, lengths)
    phase = np.cumsum(_TWO_PI * notes[seg] / SAMPLE_RATE)
    env = inside * np.sin(np.pi * np.clip(pos / lengths[seg], 0, 1))
    return env * np.sin(phase)


def _coloured_noise(rng: np.random.Generator, t: np.ndarray, low: float, high: float) -> np.ndarray:
    n = len(t)
    alpha = rng.uniform(low, high)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec *= np.where(freqs >= 20.0, np.maximum(freqs, 20.0) ** (-alpha / 2.0), 0.0)
    x = np.fft.irfft(spec, n)
    return x * (0.7 + 0.3 * np.sin(_TWO_PI * rng.uniform(0.1, 0.5) * t + rng.uniform(0, _TWO_PI)))


def _bird_trill(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    n = len(t)
    f_hi = rng.uniform(3000.0, 7000.0)
    f_lo = f_hi * rng.uniform(0.4, 0.7)
    period = 1.0 / rng.uniform(8.0, 20.0)
    duration = period * rng.uniform(0.4, 0.8)
    tau = np.mod(t, period)
    in_syllable = tau < duration
    frac = np.clip(tau / duration, 0.0, 1.0)
    freq = np.where(in_syllable, f_hi * (f_lo / f_hi) ** frac, f_hi)
    phase = np.cumsum(_TWO_PI * freq / SAMPLE_RATE)
    starts, lengths = _segment_starts(rng, n, on=(0.5, 1.5), off=(0.2, 0.8))
    _, _, in_bout = _segment_position(n, starts, lengths)
    return in_bout * in_syllable * np.sin(np.pi * frac) * np.sin(phase)


_GENERATORS: tuple[Callable[[np.random.Generator, np.ndarray], np.ndarray], ...] = (
    _pure_tone,
    lambda rng, t: _chirp(rng, t, up=True),
    lambda rng, t: _chirp(rng, t, up=False),
    _harmonic_stack,
    _am_tone,
    _fm_tone,
    _noise_burst,
    _click_train,
    _tone_arpeggio,
    lambda rng, t: _coloured_noise(rng, t, 0.8, 1.2),
    lambda rng, t: _coloured_noise(rng, t, 1.8, 2.2),
    _bird_trill,
)


def generate_clip(seed: int, label: int, min_seconds: float, max_seconds: float) -> np.ndarray:
    """Deterministic clip of class `label` from `seed`: int16 [n], n/16000 in [min, max] s."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(int(min_seconds * SAMPLE_RATE), int(max_seconds * SAMPLE_RATE) + 1))
    t = np.arange(n) / SAMPLE_RATE
    x = _GENERATORS[label](rng, t)
    x = x / (np.max(np.abs(x)) + 1e-9) * rng.uniform(0.2, 0.9)
    x = x * _fade(n, int(0.01 * SAMPLE_RATE))
    x = x + rng.standard_normal(n) * _log_uniform(rng, 1e-4, 1e-3)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def example_seed(split: str, index: int) -> int:
    """The generating seed of example `index` of `split`."""
    return SPLIT_BASE_SEEDS[split] + index


@dataclasses.dataclass(eq=False)
class SyntheticAudioConfig(tfds.core.BuilderConfig):
    """Sizes and clip lengths of one `synthetic_audio` configuration."""

    num_train: int = 1024
    num_test: int = 256
    min_seconds: float = 1.0
    max_seconds: float = 6.0


class SyntheticAudio(tfds.core.GeneratorBasedBuilder):
    """Procedural 16 kHz audio in 12 classes; generated locally, nothing to download."""

    # Set explicitly: TFDS 4.9.10's own lookup needs the optional `importlib_resources`.
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 12 procedural sound classes."}
    BUILDER_CONFIGS = [
        SyntheticAudioConfig(
            name="default",
            description="1024 train / 256 test clips of 1-6 s.",
            num_train=1024,
            num_test=256,
            min_seconds=1.0,
            max_seconds=6.0,
        ),
        SyntheticAudioConfig(
            name="tiny",
            description="64 train / 32 test clips of 0.5-3 s (tests).",
            num_train=64,
            num_test=32,
            min_seconds=0.5,
            max_seconds=3.0,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            # Raw int16 bytes (2 bytes/sample): the Audio feature in TFDS 4.9.10 ignores
            # `encoding` and stores int64 varints, about 3x larger and slower to write.
            features=tfds.features.FeaturesDict(
                {
                    "audio": tfds.features.Tensor(
                        shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES, doc="16 kHz mono waveform"
                    ),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                    "seed": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("audio", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        cfg = self.builder_config
        return {
            "train": self._generate_examples("train", cfg.num_train),
            "test": self._generate_examples("test", cfg.num_test),
        }

    def _generate_examples(self, split: str, num_examples: int) -> Iterator[tuple[int, dict]]:
        cfg = self.builder_config
        for index in range(num_examples):
            seed = example_seed(split, index)
            label = index % len(CLASS_NAMES)
            audio = generate_clip(seed, label, cfg.min_seconds, cfg.max_seconds)
            yield index, {"audio": audio, "label": label, "seed": seed}

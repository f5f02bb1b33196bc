"""Tests for the log-mel frontend: librosa equivalence, framing, masks, jit, config checks.

Mel power is compared with a float64 librosa reference with two relative errors, both
required to stay below 1e-4:

* per clip, ``max |a - b| / max |b|`` over its [T, F] frames. float32 FFT rounding is
  relative to a frame's energy, not to each bin, so this is the natural scale;
* elementwise with a floor, ``max |a - b| / (|b| + 1e-6 max |b|)``: every bin within
  60 dB of the clip's peak must also match to 1e-4 (floor 1e-6 for a power, 1e-3 for the
  tagliasacchi preset's magnitudes). Without a floor the ratio is
  meaningless in the ~-100 dB stopband of a sine's spectrum (or in digital silence).
"""

import csv
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import librosa
import ml_collections
import numpy as np
import pytest
import soundfile as sf

from audiossl_jax import frontend as fe

PRESET_NAMES = sorted(fe.PRESETS)
REL_TOL = 1e-4
NUM_FSDD_CLIPS = 5


def librosa_mel_power(y: np.ndarray, cfg: fe.FrontendConfig) -> np.ndarray:
    """float64 librosa reference for one clip y [N] -> [T, F] with T = N // hop.

    librosa places the window at offset (n_fft - win) // 2 inside an n_fft frame starting
    at t * hop, so the clip is left-padded by that offset to make its window cover
    [t * hop, t * hop + win) of y, and right-padded with zeros to give all T frames.
    """
    n = y.shape[0]
    t = n // cfg.hop_length
    left = (cfg.n_fft - cfg.win_length) // 2
    z = np.zeros(max(left + n, (t - 1) * cfg.hop_length + cfg.n_fft), dtype=np.float64)
    z[left : left + n] = y
    spec = librosa.feature.melspectrogram(
        y=z,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=cfg.window,
        center=False,
        power=cfg.power,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk",
        norm="slaney" if cfg.mel_norm == "slaney" else None,
        dtype=np.float64,
    )
    return spec.T[:t]


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - b| / max |b| over one clip's [T, F] mel power."""
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def floored_rel_err(actual: np.ndarray, expected: np.ndarray, floor: float = 1e-6) -> float:
    """max |a - b| / (|b| + floor * max |b|), elementwise over one clip's [T, F] mel power."""
    scale = np.abs(expected) + floor * np.max(np.abs(expected))
    return float(np.max(np.abs(actual - expected) / scale))


def check_batch(clips: list[np.ndarray], cfg: fe.FrontendConfig) -> list[tuple[float, float]]:
    """Runs a zero-padded batch of clips; checks each clip's valid frames against librosa.

    Returns (per-clip error, floored elementwise error) for each clip.
    """
    n_max = max(len(c) for c in clips)
    batch = np.zeros((len(clips), n_max), dtype=np.float32)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    out = np.asarray(fe.mel_power(batch, cfg))
    assert out.shape == (len(clips), n_max // cfg.hop_length, cfg.n_mels)
    assert out.dtype == np.float32
    mask = np.asarray(fe.frame_mask(np.array([len(c) for c in clips]), out.shape[1], cfg))
    errors = []
    for i, c in enumerate(clips):
        ref = librosa_mel_power(c.astype(np.float32).astype(np.float64), cfg)
        valid = out[i][mask[i]]
        assert valid.shape == ref.shape
        # The floor is 60 dB below the peak: 1e-6 of a power, 1e-3 of a magnitude.
        errors.append((rel_err(valid, ref), floored_rel_err(valid, ref, floor=1e-6 ** (cfg.power / 2))))
    assert max(max(e) for e in errors) < REL_TOL, errors
    return errors


def synthetic_clips(sr: int) -> list[np.ndarray]:
    """Sine, linear chirp, white noise, and a quiet short noise burst, of different lengths."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * sr)) / sr
    sine = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    dur = t[-1]
    chirp = 0.8 * np.sin(2 * np.pi * (50.0 * t + (7000.0 - 50.0) * t**2 / (2 * dur)))
    noise = 0.1 * rng.standard_normal(sr + 123)
    burst = 1e-3 * rng.standard_normal(3 * 320 + 17)
    return [sine, chirp, noise, burst]


def fsdd_clips(shared_data: pathlib.Path) -> list[np.ndarray]:
    """A few spoken-digit clips (float64 in [-1, 1]) from shared/data/fsdd."""
    root = shared_data / "fsdd"
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    picks = rows[:: len(rows) // NUM_FSDD_CLIPS][:NUM_FSDD_CLIPS]
    clips = []
    for row in picks:
        audio, sr = sf.read(root / row["filename"], dtype="float64")
        assert sr == 16000 and audio.ndim == 1
        clips.append(audio)
    return clips


@pytest.mark.parametrize("name", PRESET_NAMES)
@pytest.mark.parametrize("mel_scale", fe.MEL_SCALES)
@pytest.mark.parametrize("mel_norm", fe.MEL_NORMS)
def test_filterbank_matches_librosa(name: str, mel_scale: str, mel_norm: str) -> None:
    cfg = dataclasses.replace(fe.PRESETS[name], mel_scale=mel_scale, mel_norm=mel_norm)
    ref = librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=mel_scale == "htk",
        norm="slaney" if mel_norm == "slaney" else None,
        dtype=np.float64,
    ).T
    fb = fe.mel_filterbank(cfg, np.float64)
    assert fb.shape == (cfg.n_fft // 2 + 1, cfg.n_mels)
    np.testing.assert_allclose(fb, ref, rtol=1e-12, atol=1e-12 * ref.max())
    assert fe.mel_filterbank(cfg).dtype == np.float32


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_mel_power_matches_librosa_synthetic(name: str) -> None:
    cfg = fe.PRESETS[name]
    check_batch(synthetic_clips(cfg.sample_rate), cfg)


def test_tagliasacchi_preset_takes_the_log_of_mel_weighted_magnitudes() -> None:
    """ "The logarithm of the modulus of the spectrogram": librosa with power=1 for this preset
    (the conformer preset keeps the power spectrum)."""
    cfg = fe.PRESETS["tagliasacchi"]
    assert cfg.power == 1.0 and fe.PRESETS["conformer"].power == 2.0
    y = synthetic_clips(cfg.sample_rate)[2].astype(np.float32)  # white noise: every bin well above 0
    t = y.shape[0] // cfg.hop_length
    left = (cfg.n_fft - cfg.win_length) // 2
    z = np.zeros(max(left + y.shape[0], (t - 1) * cfg.hop_length + cfg.n_fft))
    z[left : left + y.shape[0]] = y
    ref = librosa.feature.melspectrogram(
        y=z,
        sr=16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",
        center=False,
        power=1,
        n_mels=64,
        fmin=60.0,
        fmax=7800.0,
        htk=True,
        norm=None,
        dtype=np.float64,
    ).T[:t]
    got = np.asarray(fe.logmel(y[None], cfg))[0]
    np.testing.assert_allclose(got, np.log(ref + 1e-6), atol=2e-4)
    power = np.asarray(fe.logmel(y[None], dataclasses.replace(cfg, power=2.0)))[0]
    assert np.abs(power - got).max() > 1.0  # power and magnitude differ


def test_mel_power_matches_librosa_slaney_hamming() -> None:
    cfg = dataclasses.replace(fe.PRESETS["tagliasacchi"], mel_scale="slaney", mel_norm="slaney", window="hamming")
    check_batch(synthetic_clips(cfg.sample_rate)[1:3], cfg)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_mel_power_matches_librosa_fsdd(name: str, shared_data: pathlib.Path) -> None:
    check_batch(fsdd_clips(shared_data), fe.PRESETS[name])


def test_int16_input_is_scaled_pcm(shared_data: pathlib.Path) -> None:
    cfg = fe.PRESETS["conformer"]
    root = shared_data / "fsdd"
    with open(root / "metadata.csv", newline="") as f:
        filename = next(csv.DictReader(f))["filename"]
    pcm, _ = sf.read(root / filename, dtype="int16")
    as_float, _ = sf.read(root / filename, dtype="float32")
    np.testing.assert_array_equal(
        np.asarray(fe.mel_power(pcm[None], cfg)), np.asarray(fe.mel_power(as_float[None], cfg))
    )


def test_integer_dtypes_other_than_int16_rejected() -> None:
    with pytest.raises(TypeError, match="int32"):
        fe.mel_power(np.zeros((1, 1000), np.int32), fe.PRESETS["conformer"])


def test_logmel_is_log_of_mel_power_plus_offset() -> None:
    cfg = fe.PRESETS["tagliasacchi"]
    x = np.random.default_rng(1).standard_normal((2, 4000)).astype(np.float32) * 0.1
    x[1, 2000:] = 0.0
    expected = np.log(np.asarray(fe.mel_power(x, cfg)) + cfg.log_offset)
    out = np.asarray(fe.logmel(x, cfg))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1, -1], np.log(cfg.log_offset), rtol=1e-6)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_shapes(name: str) -> None:
    cfg = fe.PRESETS[name]
    for n in [0, 100, 159, 160, 320, 1023, 16000, 16319]:
        out = jax.eval_shape(lambda x: fe.logmel(x, cfg), jax.ShapeDtypeStruct((3, n), jnp.float32))
        assert out.shape == (3, n // cfg.hop_length, cfg.n_mels)
        assert out.dtype == jnp.float32
        assert fe.num_frames(n, cfg) == n // cfg.hop_length
    assert fe.logmel(jnp.zeros((2, 1000)), cfg).shape == (2, 1000 // cfg.hop_length, cfg.n_mels)
    assert fe.logmel(jnp.zeros((2, 100)), cfg).shape == (2, 0, cfg.n_mels)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_frames_follow_the_framing_convention(name: str) -> None:
    cfg = fe.PRESETS[name]
    n = 7 * cfg.hop_length + 5
    x = np.random.default_rng(5).standard_normal((2, n)).astype(np.float32)
    out = np.asarray(fe.frames(x, cfg))
    padded = np.concatenate([x, np.zeros((2, cfg.win_length), np.float32)], axis=1)
    expected = np.stack(
        [padded[:, t * cfg.hop_length : t * cfg.hop_length + cfg.win_length] for t in range(7)],
        axis=1,
    )
    np.testing.assert_array_equal(out, expected)


def test_conformer_ten_seconds_is_500_frames() -> None:
    cfg = fe.PRESETS["conformer"]
    assert fe.num_frames(160000, cfg) == 500
    out = jax.jit(fe.logmel, static_argnums=1)(jnp.zeros((8, 160000), jnp.float32), cfg)
    assert out.shape == (8, 500, 64)
    assert out.dtype == jnp.float32


def test_frame_mask_counts() -> None:
    cfg = fe.PRESETS["conformer"]
    lengths = np.array([0, 319, 320, 321, 959, 960, 16000])
    mask = np.asarray(fe.frame_mask(jnp.asarray(lengths), 50, cfg))
    assert mask.shape == (7, 50) and mask.dtype == bool
    np.testing.assert_array_equal(mask.sum(axis=1), lengths // cfg.hop_length)
    np.testing.assert_array_equal(mask, np.arange(50)[None] < (lengths // 320)[:, None])


def test_jit_static_config_and_nested() -> None:
    cfg = fe.PRESETS["tagliasacchi"]
    x = np.random.default_rng(2).standard_normal((2, 3200)).astype(np.float32)
    eager = np.asarray(fe.logmel(x, cfg))
    jitted = np.asarray(jax.jit(fe.logmel, static_argnums=1)(x, cfg))
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)

    @jax.jit
    def features_and_mask(wave: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
        feats = fe.logmel(wave, cfg)
        return feats, fe.frame_mask(lengths, feats.shape[1], cfg)

    feats, mask = features_and_mask(x, jnp.array([3200, 1000]))
    np.testing.assert_allclose(np.asarray(feats), eager, rtol=1e-5, atol=1e-5)
    assert mask.shape == (2, 20) and int(mask[1].sum()) == 6


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_zero_padding_keeps_valid_frames(name: str) -> None:
    cfg = fe.PRESETS[name]
    n = 5 * cfg.hop_length + 77
    clip = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    alone = np.asarray(fe.mel_power(clip[None], cfg))[0]
    padded = np.zeros((2, n + 3000), np.float32)
    padded[0, :n] = clip
    padded[1] = np.random.default_rng(4).standard_normal(n + 3000)
    out = np.asarray(fe.mel_power(padded, cfg))
    valid = out[0][np.asarray(fe.frame_mask(jnp.array([n, n + 3000]), out.shape[1], cfg))[0]]
    assert valid.shape == alone.shape == (5, cfg.n_mels)
    assert rel_err(valid, alone) < 1e-6


def test_presets_and_config_dicts() -> None:
    conformer = fe.PRESETS["conformer"]
    assert (conformer.sample_rate, conformer.win_length, conformer.hop_length) == (16000, 1024, 320)
    assert (conformer.n_fft, conformer.n_mels, conformer.mel_scale) == (1024, 64, "htk")
    tag = fe.PRESETS["tagliasacchi"]
    assert (tag.win_length, tag.hop_length, tag.n_fft, tag.n_mels) == (400, 160, 512, 64)
    assert (tag.fmin, tag.fmax, tag.mel_scale) == (60.0, 7800.0, "htk")
    for name, cfg in fe.PRESETS.items():
        cd = fe.preset_config_dict(name)
        assert isinstance(cd, ml_collections.ConfigDict)
        assert fe.FrontendConfig.from_config(cd) == cfg
        assert hash(fe.FrontendConfig.from_config(cd)) == hash(cfg)
    config = ml_collections.ConfigDict()
    config.frontend = fe.preset_config_dict("conformer")
    config.frontend.n_mels = 80
    config.frontend.fmin = 125
    cfg = fe.FrontendConfig.from_config(config.frontend)
    assert cfg.n_mels == 80 and cfg.fmin == 125.0 and isinstance(cfg.fmin, float)
    assert fe.preset_config_dict("conformer").n_mels == 64
    with pytest.raises(ValueError, match="unknown frontend preset"):
        fe.preset_config_dict("nope")


def test_from_config_rejects_unknown_and_missing_keys() -> None:
    values = fe.preset_config_dict("conformer").to_dict()
    with pytest.raises(ValueError, match=r"config\.frontend\.n_mel\b"):
        fe.FrontendConfig.from_config({**values, "n_mel": 64})
    with pytest.raises(ValueError, match=r"config\.frontend\.fmax=9000\.0: must be <= sample_rate"):
        fe.FrontendConfig.from_config({**values, "fmax": 9000.0})
    del values["fmax"]
    with pytest.raises(ValueError, match=r"config\.frontend\.fmax"):
        fe.FrontendConfig.from_config(values)
    minimal = {k: v for k, v in values.items() if k not in ("log_offset", "mel_norm", "window")}
    minimal["fmax"] = 8000.0
    assert fe.FrontendConfig.from_config(minimal) == fe.PRESETS["conformer"]


@pytest.mark.parametrize(
    "field, value, why",
    [
        ("sample_rate", 16000.5, "int"),
        ("sample_rate", 0, "> 0"),
        ("hop_length", 0, "> 0"),
        ("win_length", 2048, "n_fft"),
        ("n_fft", True, "int"),
        ("n_mels", -1, "> 0"),
        ("n_mels", 512, "no FFT bin"),
        ("fmin", -1.0, ">= 0"),
        ("fmin", 8000.0, "fmax"),
        ("fmax", 9000.0, "sample_rate / 2"),
        ("fmax", float("nan"), "finite"),
        ("mel_scale", "mel", "htk"),
        ("mel_norm", "l2", "slaney"),
        ("window", "blackman", "hann"),
        ("log_offset", 0.0, "> 0"),
        ("log_offset", "1e-6", "real"),
        ("power", 0.0, "> 0"),
    ],
)
def test_bad_config_values_name_the_field(field: str, value: object, why: str) -> None:
    with pytest.raises(ValueError, match=rf"FrontendConfig\.{field}=.*{why}"):
        dataclasses.replace(fe.PRESETS["conformer"], **{field: value})


def test_clip_logmel_ignores_what_padding_holds():
    """Garbage past a clip's length never reaches its valid frames."""
    cfg = fe.PRESETS["conformer"]
    rng = np.random.default_rng(0)
    n, length = 16000, 9000
    clean = np.zeros((1, n), np.float32)
    clean[0, :length] = rng.normal(scale=0.1, size=length)
    noisy = clean.copy()
    noisy[0, length:] = 0.9
    lengths = jnp.asarray([length])
    a, mask_a = fe.clip_logmel(jnp.asarray(clean), lengths, cfg)
    b, mask_b = fe.clip_logmel(jnp.asarray(noisy), lengths, cfg)
    np.testing.assert_array_equal(np.asarray(mask_a), np.asarray(mask_b))
    assert int(mask_a.sum()) == length // cfg.hop_length
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(fe.logmel(jnp.asarray(clean), cfg)))

"""Tests of the data sources, the registry and the host-side input pipeline."""

from __future__ import annotations

import pathlib
import re
import time

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from audiossl_jax.data import audio_folder, pipeline, registry, synthetic

SR = 16000


def _tiny_cfg(data_dir: pathlib.Path, **overrides: object):
    cfg = pipeline.default_data_config()
    cfg.name = "synthetic_audio/tiny"
    cfg.data_dir = str(data_dir)
    cfg.shuffle_buffer = 16
    cfg.update(overrides)
    return cfg


def _folder_cfg(path: pathlib.Path, **overrides: object):
    cfg = pipeline.default_data_config()
    cfg.name = "audio_folder"
    cfg.path = str(path)
    cfg.update(overrides)
    return cfg


def _examples(cfg, split: str) -> list[tuple[np.ndarray, int]]:
    return [(ex["audio"], int(ex["label"])) for ex in registry.get_dataset(cfg, split).as_numpy_iterator()]


def _key(audio: np.ndarray) -> bytes:
    return np.asarray(audio, np.float32).tobytes()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A data_dir holding the prepared `synthetic_audio/tiny`."""
    data_dir = tmp_path_factory.mktemp("tfds")
    registry.get_dataset_info(_tiny_cfg(data_dir), "train")
    return data_dir


@pytest.fixture(scope="session")
def tiny_train(tiny_dir: pathlib.Path) -> list[tuple[np.ndarray, int]]:
    return _examples(_tiny_cfg(tiny_dir), "train")


@pytest.fixture(scope="session")
def tiny_test(tiny_dir: pathlib.Path) -> list[tuple[np.ndarray, int]]:
    return _examples(_tiny_cfg(tiny_dir), "test")


def test_synthetic_is_deterministic(tiny_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    def by_seed(data_dir: pathlib.Path) -> dict[int, bytes]:
        builder = synthetic.SyntheticAudio(config="tiny", data_dir=str(data_dir))
        builder.download_and_prepare()
        return {int(ex["seed"]): ex["audio"].tobytes()
                for ex in builder.as_dataset(split="train").as_numpy_iterator()}

    first, second = by_seed(tiny_dir), by_seed(tmp_path)
    assert len(first) == 64
    assert first == second


def test_synthetic_contents(tiny_dir: pathlib.Path, tiny_train, tiny_test) -> None:
    info = registry.get_dataset_info(_tiny_cfg(tiny_dir), "train")
    assert info.num_classes >= 10 and len(info.class_names) == info.num_classes
    assert info.sample_rate == SR and info.num_examples == len(tiny_train) == 64
    assert len(tiny_test) == 32
    assert {label for _, label in tiny_train} == set(range(info.num_classes))
    lengths = [len(audio) for audio, _ in tiny_train + tiny_test]
    assert len(set(lengths)) > 50
    assert 0.5 * SR <= min(lengths) and max(lengths) <= 3.0 * SR
    for audio, _ in tiny_train + tiny_test:
        assert audio.dtype == np.float32
        assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
        assert np.max(np.abs(audio)) > 0.1


def _features(audio: np.ndarray) -> np.ndarray:
    """Mean log band energies plus a few temporal/spectral-shape statistics."""
    frame, hop = 512, 256
    n = (len(audio) - frame) // hop + 1
    frames = audio[np.arange(frame)[None, :] + hop * np.arange(n)[:, None]].astype(np.float64)
    spec = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2 + 1e-10
    edges = np.unique(np.geomspace(2, 257, 30).astype(int))
    bands = np.log(np.stack([spec[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1))
    energy = np.log(spec.sum(1))
    centroid = np.log((spec * np.arange(spec.shape[1])).sum(1) / spec.sum(1) + 1)
    active = energy[1:] > energy.max() - 30
    drift = np.mean(np.clip(np.diff(centroid)[active], -0.2, 0.2))
    flatness = np.log(np.exp(np.log(spec).mean(1)) / spec.mean(1)).mean()
    peakiness = np.log(spec.max(1) / spec.sum(1)).mean()
    stats = [energy.std(), np.abs(np.diff(energy)).mean(), 20 * drift, flatness, peakiness]
    return np.concatenate([(bands - energy.mean()).mean(0), stats])


def test_synthetic_classes_are_distinguishable(tiny_train, tiny_test) -> None:
    x_train = np.stack([_features(a) for a, _ in tiny_train])
    y_train = np.array([label for _, label in tiny_train])
    x_test = np.stack([_features(a) for a, _ in tiny_test])
    y_test = np.array([label for _, label in tiny_test])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    classes = np.unique(y_train)
    centroids = np.stack([x_train[y_train == c].mean(0) for c in classes])
    predicted = classes[np.argmin(((x_test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    accuracy = np.mean(predicted == y_test)
    assert accuracy > 4.0 / len(classes), accuracy


def test_train_batch_contract_short_clips(tiny_dir: pathlib.Path, tiny_train) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0)
    batch = next(pipeline.make_train_iterator(cfg, batch_size=8, seed=0))
    assert set(batch) == {"waveform", "length", "label"}
    assert batch["waveform"].shape == (8, 4 * SR) and batch["waveform"].dtype == np.float32
    assert batch["length"].shape == (8,) and batch["length"].dtype == np.int32
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
    clips = {_key(a): label for a, label in tiny_train}
    for row, length, label in zip(batch["waveform"], batch["length"], batch["label"]):
        assert clips[_key(row[:length])] == label
        assert np.all(row[length:] == 0)


def test_train_crops_long_clips(tiny_dir: pathlib.Path) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.25)
    batch = next(pipeline.make_train_iterator(cfg, batch_size=16, seed=3))
    assert batch["waveform"].shape == (16, 4000)
    assert np.all(batch["length"] == 4000)


def test_train_iterator_determinism(tiny_dir: pathlib.Path) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.5)

    def take(seed: int, start_step: int = 0) -> list[dict[str, np.ndarray]]:
        it = pipeline.make_train_iterator(cfg, batch_size=8, seed=seed, start_step=start_step)
        return [next(it) for _ in range(3)]

    first, again, other, resumed = take(0), take(0), take(1), take(0, start_step=100)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(first[0]["waveform"], other[0]["waveform"])
    assert not np.array_equal(first[0]["waveform"], resumed[0]["waveform"])


def test_hosts_see_disjoint_examples(tiny_dir: pathlib.Path, tiny_train) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0)
    seen = []
    for host in range(2):
        it = pipeline.make_train_iterator(cfg, batch_size=8, seed=0, process_index=host, process_count=2)
        keys = set()
        for _ in range(12):
            batch = next(it)
            keys |= {_key(w[:n]) for w, n in zip(batch["waveform"], batch["length"])}
        seen.append(keys)
    assert len(seen[0]) == len(seen[1]) == 32
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {_key(a) for a, _ in tiny_train}


def test_eval_iterator_yields_every_example_once(tiny_dir: pathlib.Path, tiny_test) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0)
    expected = sorted(_key(a) for a, _ in tiny_test)
    batches = list(pipeline.make_eval_iterator(cfg, batch_size=10))
    assert len(batches) == 4 == pipeline.num_eval_batches(32, 10)
    assert [int(b["valid"].sum()) for b in batches] == [10, 10, 10, 2]
    last = batches[-1]
    assert np.all(last["length"][~last["valid"]] == 0) and np.all(last["waveform"][~last["valid"]] == 0)
    keys = [_key(w[:n]) for b in batches for w, n, v in zip(b["waveform"], b["length"], b["valid"]) if v]
    assert sorted(keys) == expected

    per_host = [list(pipeline.make_eval_iterator(cfg, batch_size=6, process_index=h, process_count=2))
                for h in range(2)]
    assert len(per_host[0]) == len(per_host[1]) == 3
    keys = [_key(w[:n]) for host in per_host for b in host
            for w, n, v in zip(b["waveform"], b["length"], b["valid"]) if v]
    assert sorted(keys) == expected


def test_eval_centre_crop(tiny_dir: pathlib.Path, tiny_test) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.25)
    batch = next(pipeline.make_eval_iterator(cfg, batch_size=4))
    for row, (audio, _) in zip(batch["waveform"], tiny_test[:4]):
        offset = (len(audio) - 4000 + 1) // 2
        np.testing.assert_array_equal(row, audio[offset:offset + 4000])


def test_audio_folder_fsdd(shared_data: pathlib.Path) -> None:
    root = shared_data / "fsdd"
    everything = audio_folder.index_audio_folder(root, split="all")
    assert len(everything.files) == 3000
    assert set(everything.labels) == set(range(10))
    cfg = _folder_cfg(root)
    ds, info = registry.load_dataset(cfg, "test")
    assert info.num_examples == 300 and info.num_classes == 10 and info.sample_rate == SR
    assert registry.get_dataset_info(cfg, "train").num_examples == 2700
    for example in ds.take(5).as_numpy_iterator():
        assert example["audio"].dtype == np.float32 and example["audio"].ndim == 1
        assert 0 <= example["label"] <= 9
    speaker = registry.get_dataset_info(_folder_cfg(root, label_key="speaker"), "test")
    assert speaker.num_classes == 6


def _write_folder(root: pathlib.Path) -> dict[str, np.ndarray]:
    """Writes a WAV, a FLAC and a stereo WAV; returns the expected mono float audio."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    mono = (rng.uniform(-0.5, 0.5, 8000) * 32767).astype(np.int16)
    stereo = (rng.uniform(-0.5, 0.5, (4000, 2)) * 32767).astype(np.int16)
    soundfile.write(root / "a.wav", mono, SR, subtype="PCM_16")
    soundfile.write(root / "sub" / "b.flac", mono[:5000], SR, subtype="PCM_16")
    soundfile.write(root / "c.wav", stereo, SR, subtype="PCM_16")
    return {"a.wav": mono / 32768.0, "sub/b.flac": mono[:5000] / 32768.0,
            "c.wav": (stereo / 32768.0).mean(axis=1)}


def test_audio_folder_without_metadata(tmp_path: pathlib.Path) -> None:
    expected = _write_folder(tmp_path / "audio")
    ds, info = registry.load_dataset(_folder_cfg(tmp_path / "audio"), "train")
    assert info.num_examples == 3 and info.num_classes == 0
    examples = list(ds.as_numpy_iterator())
    for (name, audio), example in zip(sorted(expected.items()), examples):
        np.testing.assert_allclose(example["audio"], audio, atol=1e-6, err_msg=name)
        assert example["label"] == -1


def test_audio_folder_metadata_labels_and_splits(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text(
        "filename,label,split\na.wav,dog,train\nsub/b.flac,cat,test\nc.wav,dog,train\n")
    ds, info = registry.load_dataset(_folder_cfg(root), "train")
    assert info.class_names == ("cat", "dog") and info.num_examples == 2
    assert [int(ex["label"]) for ex in ds.as_numpy_iterator()] == [1, 1]
    with pytest.raises(audio_folder.AudioFolderError, match="splits: \\['test', 'train'\\]"):
        registry.get_dataset(_folder_cfg(root), "validation")
    (root / "metadata.csv").write_text("filename,label\na.wav,dog\nmissing.wav,cat\n")
    with pytest.raises(audio_folder.AudioFolderError, match="missing.wav"):
        registry.get_dataset(_folder_cfg(root), "train")


def test_audio_folder_errors_name_the_file(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "broken.wav").write_bytes(b"this is not audio")
    with pytest.raises(tf.errors.OpError, match=re.escape(str(root / "broken.wav"))):
        list(registry.get_dataset(_folder_cfg(root), "train").as_numpy_iterator())

    root = tmp_path / "rate"
    root.mkdir()
    soundfile.write(root / "fast.wav", np.zeros(100, np.int16), 44100, subtype="PCM_16")
    pattern = re.escape(str(root / "fast.wav")) + ".*44100 Hz, expected 16000 Hz"
    with pytest.raises(tf.errors.OpError, match=pattern):
        list(registry.get_dataset(_folder_cfg(root), "train").as_numpy_iterator())

    root = tmp_path / "empty"
    root.mkdir()
    soundfile.write(root / "silent.flac", np.zeros(0, np.int16), SR, subtype="PCM_16")
    with pytest.raises(tf.errors.OpError, match="silent.flac.*empty"):
        list(registry.get_dataset(_folder_cfg(root), "train").as_numpy_iterator())

    with pytest.raises(audio_folder.AudioFolderError, match=re.escape(str(tmp_path / "nowhere"))):
        registry.get_dataset(_folder_cfg(tmp_path / "nowhere"), "train")


@pytest.mark.parametrize("name", ["audioset", "audioset_balanced"])
def test_paper_dataset_not_prepared(name: str, tmp_path: pathlib.Path) -> None:
    cfg = pipeline.default_data_config()
    cfg.name = name
    cfg.data_dir = str(tmp_path)
    start = time.monotonic()
    with pytest.raises(registry.DatasetNotPreparedError) as error:
        pipeline.make_train_iterator(cfg, batch_size=2, seed=0)
    assert time.monotonic() - start < 5.0
    message = str(error.value)
    assert repr(name) in message and str(tmp_path) in message
    assert "cannot be downloaded automatically" in message
    assert "--config.data.name=audio_folder --config.data.path=/path/to/audio" in message
    assert isinstance(error.value, registry.DatasetError)


def test_unknown_dataset_lists_known_names() -> None:
    cfg = pipeline.default_data_config()
    cfg.name = "no_such_dataset"
    with pytest.raises(registry.DatasetError) as error:
        registry.get_dataset(cfg, "train")
    for name in ("synthetic_audio", "synthetic_audio/tiny", "audio_folder", "audioset"):
        assert name in str(error.value)


def test_synthetic_not_prepared_without_prepare(tmp_path: pathlib.Path) -> None:
    with pytest.raises(registry.DatasetNotPreparedError, match="prepare"):
        registry.get_dataset(_tiny_cfg(tmp_path, prepare=False), "train")


def test_default_data_config_keys() -> None:
    cfg = pipeline.default_data_config()
    assert set(cfg.keys()) == {"name", "data_dir", "path", "label_key", "prepare", "sample_rate",
                               "crop_seconds", "shuffle_buffer", "train_split", "eval_split"}
    assert cfg.name == "synthetic_audio" and cfg.data_dir is None and cfg.path is None
    assert pipeline.crop_samples(cfg) == 64000

"""Audio folders: metadata, labels, splits, decoding/resampling, and every bad-input case."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
import soundfile
import soxr

from audiossl_jax.data import audio_io, manifest, pipeline, registry

SR = 16000


def _cfg(path: pathlib.Path, data_dir: pathlib.Path, **overrides: object):
    cfg = pipeline.default_data_config()
    cfg.name = "audio_folder"
    cfg.path = str(path)
    cfg.data_dir = str(data_dir)
    cfg.update(overrides)
    return cfg


def _tone(n: int, freq: float = 440.0, rate: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _write_folder(root: pathlib.Path) -> dict[str, np.ndarray]:
    """Writes a WAV, a FLAC and a stereo WAV; returns the expected mono float audio."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    mono = (rng.uniform(-0.5, 0.5, 8000) * 32767).astype(np.int16)
    stereo = (rng.uniform(-0.5, 0.5, (4000, 2)) * 32767).astype(np.int16)
    soundfile.write(root / "a.wav", mono, SR, subtype="PCM_16")
    soundfile.write(root / "sub" / "b.flac", mono[:5000], SR, subtype="PCM_16")
    soundfile.write(root / "c.wav", stereo, SR, subtype="PCM_16")
    return {"a.wav": mono / 32768.0, "sub/b.flac": mono[:5000] / 32768.0, "c.wav": (stereo / 32768.0).mean(axis=1)}


def _report(data_dir: pathlib.Path) -> dict:
    (path,) = data_dir.glob(f"audio_folder/*/{manifest.REPORT_FILE}")
    return json.loads(path.read_text())


def test_without_metadata(tmp_path: pathlib.Path) -> None:
    expected = _write_folder(tmp_path / "audio")
    ds, info = registry.load_dataset(_cfg(tmp_path / "audio", tmp_path / "dd"), "train")
    assert info.num_examples == 3 and info.num_classes == 0
    examples = list(ds.as_numpy_iterator())
    for (name, audio), example in zip(sorted(expected.items()), examples):
        np.testing.assert_allclose(example["audio"], audio, atol=1e-6, err_msg=name)
        assert example["label"] == -1
    assert _report(tmp_path / "dd")["mixed_to_mono"] == 1


def test_metadata_labels_splits_folds(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text(
        "filename,label,split,fold\na.wav,dog,train,1\nsub/b.flac,cat,test,2\nc.wav,dog,train,2\n"
    )
    cfg = _cfg(root, tmp_path / "dd")
    ds, info = registry.load_dataset(cfg, "train")
    assert info.class_names == ("cat", "dog") and info.num_examples == 2
    assert [int(ex["label"]) for ex in ds.as_numpy_iterator()] == [1, 1]
    with pytest.raises(registry.DatasetError, match="splits: \\['test', 'train'\\]"):
        registry.get_dataset(cfg, "validation")
    assert registry.get_dataset_info(cfg, "fold:2").num_examples == 2
    assert registry.get_dataset_info(cfg, "!fold:2").num_examples == 1
    with pytest.raises(registry.DatasetError, match="folds present: \\['1', '2'\\]"):
        registry.get_dataset_info(cfg, "fold:7")


def test_multi_label_tags(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text("filename,label,tags\na.wav,x,rock;guitar\nsub/b.flac,y,piano\nc.wav,x,\n")
    cfg = _cfg(root, tmp_path / "dd", label_key="tags", multi_label=True, crop_seconds=0.25)
    ds, info = registry.load_dataset(cfg, "train")
    assert info.multi_label and info.class_names == ("guitar", "piano", "rock")
    labels = [ex["label"] for ex in ds.as_numpy_iterator()]
    np.testing.assert_array_equal(labels, [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    batch = next(pipeline.make_train_iterator(cfg, batch_size=3, seed=0))
    assert batch["label"].shape == (3, 3) and batch["label"].dtype == np.float32
    assert sorted(batch["label"].sum(1).tolist()) == [0.0, 1.0, 2.0]
    evals = list(pipeline.make_eval_iterator(cfg, "train", batch_size=2))
    assert evals[1]["label"].shape == (2, 3) and not evals[1]["valid"][1]
    np.testing.assert_array_equal(evals[1]["label"][1], 0)


def test_class_balanced_pipeline(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    lines = ["filename,label"]
    for i, label in enumerate(["a"] * 9 + ["b"] * 3 + ["c"]):
        soundfile.write(root / f"{i}.wav", _tone(400 + 10 * i, 300 + 50 * i), SR)
        lines.append(f"{i}.wav,{label}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    cfg = _cfg(root, tmp_path / "dd", crop_seconds=0.02, class_balanced=True)
    labels = np.concatenate([b["label"] for b in _batches(cfg, 40, seed=1)])
    freq = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.06)
    np.testing.assert_array_equal(labels, np.concatenate([b["label"] for b in _batches(cfg, 40, seed=1)]))
    plain = np.concatenate([b["label"] for b in _batches(_cfg(root, tmp_path / "dd", crop_seconds=0.02), 13, seed=1)])
    np.testing.assert_array_equal(np.bincount(plain), [90, 30, 10])


def _batches(cfg, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    it = pipeline.make_train_iterator(cfg, batch_size=10, seed=seed)
    return [next(it) for _ in range(n)]


def test_groups_must_stay_in_one_split(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text(
        "filename,label,split,speaker\na.wav,1,train,ann\nsub/b.flac,2,test,bob\nc.wav,1,test,ann\n"
    )
    with pytest.raises(registry.DatasetError, match="group 'ann' .*'train' and 'test'"):
        registry.get_dataset_info(_cfg(root, tmp_path / "dd", group_key="speaker"), "train")
    info = registry.get_dataset_info(_cfg(root, tmp_path / "dd"), "train")
    assert info.num_classes == 2 and info.class_names == ("1", "2")  # the labels present, not 0..2


def test_resampler_matches_references() -> None:
    rng = np.random.default_rng(0)
    for from_rate, to_rate in ((44100, 16000), (8000, 16000), (22050, 16000), (48000, 32000)):
        t = np.arange(int(0.5 * from_rate)) / from_rate
        tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
        out = audio_io.resample(tone, from_rate, to_rate)
        assert len(out) == int(np.ceil(len(tone) * to_rate / from_rate))
        expected = np.sin(2 * np.pi * 1000.0 * np.arange(len(out)) / to_rate)
        inner = slice(200, len(out) - 200)
        np.testing.assert_allclose(out[inner], expected[inner], atol=2e-3)
        spectrum = np.fft.rfft(rng.standard_normal(from_rate // 4))
        spectrum[np.fft.rfftfreq(from_rate // 4, 1 / from_rate) > 0.4 * min(from_rate, to_rate)] = 0
        noise = np.fft.irfft(spectrum, from_rate // 4).astype(np.float32)
        ours = audio_io.resample(noise, from_rate, to_rate)
        ref = soxr.resample(noise, from_rate, to_rate, quality="VHQ")
        n = min(len(ours), len(ref))
        err = np.sqrt(np.mean((ours[200 : n - 200] - ref[200 : n - 200]) ** 2)) / np.std(ref)
        assert err < 0.01, (from_rate, to_rate, err)


def test_resampled_length_is_the_resampler_output_length() -> None:
    """Preparation reports lengths without resampling; they must equal what reading yields."""
    rng = np.random.default_rng(1)
    for from_rate, to_rate in ((44100, 16000), (8000, 16000), (22050, 16000), (48000, 32000), (16000, 16000)):
        for n in (1, 2, 3, 441, 1000, 4999, 22051):
            audio = rng.standard_normal(n).astype(np.float32)
            assert audio_io.resampled_length(n, from_rate, to_rate) == len(audio_io.resample(audio, from_rate, to_rate))


def test_other_rates_and_channels_are_converted_and_reported(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    soundfile.write(root / "fast.wav", _tone(44100, rate=44100), 44100)
    soundfile.write(root / "ok.flac", _tone(16000), SR)
    soundfile.write(root / "quad.wav", np.stack([_tone(8000)] * 4, axis=1), SR)
    ds, info = registry.load_dataset(_cfg(root, tmp_path / "dd"), "train")
    audio = {ex["audio"].shape[0]: ex["audio"] for ex in ds.as_numpy_iterator()}
    assert info.num_examples == 3 and sorted(audio) == [8000, 16000]
    np.testing.assert_allclose(audio[8000], _tone(8000), atol=1e-4)
    report = _report(tmp_path / "dd")
    assert report["resampled_from_hz"] == {"44100": 1} and report["mixed_to_mono"] == 1
    assert report["kept"] == 3 and report["skipped"] == 0


def _bad_folder(root: pathlib.Path) -> dict[str, str]:
    """One good file plus one file per problem; returns file name -> expected problem pattern."""
    root.mkdir()
    soundfile.write(root / "good.wav", _tone(4000), SR)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
    (root / "text.flac").write_text("not audio at all")
    soundfile.write(root / "empty.wav", np.zeros(0, np.float32), SR)
    nan = _tone(4000)
    nan[100] = np.nan
    soundfile.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    inf = _tone(4000)
    inf[5] = np.inf
    soundfile.write(root / "inf.wav", inf, SR, subtype="FLOAT")
    soundfile.write(root / "silent.wav", np.zeros(4000, np.float32), SR)
    soundfile.write(root / "orphan.wav", _tone(4000), SR)
    soundfile.write(root / "alien.wav", _tone(4000), SR)
    rows = [
        "good.wav,dog",
        "corrupt.wav,dog",
        "text.flac,cat",
        "empty.wav,dog",
        "nan.wav,cat",
        "inf.wav,dog",
        "silent.wav,cat",
        "missing.wav,dog",
        "alien.wav,whale",
    ]
    (root / "metadata.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return {
        "corrupt.wav": "not a readable audio file",
        "text.flac": "not a readable audio file",
        "empty.wav": "empty audio file",
        "nan.wav": "1 NaN/Inf samples",
        "inf.wav": "1 NaN/Inf samples",
        "silent.wav": "silent clip",
        "missing.wav": "metadata row without a file",
        "orphan.wav": "file without a metadata row",
        "alien.wav": "label 'whale' is not in the label set",
    }


def test_bad_input_errors_name_every_file(tmp_path: pathlib.Path) -> None:
    expected = _bad_folder(tmp_path / "bad")
    cfg = _cfg(tmp_path / "bad", tmp_path / "dd", class_names="cat,dog")
    with pytest.raises(registry.DatasetError) as error:
        registry.get_dataset_info(cfg, "train")
    message = str(error.value)
    assert f"{len(expected)} bad rows/files" in message and "skip_bad_files=True" in message
    for name, problem in expected.items():
        assert re.search(re.escape(str(tmp_path / "bad" / name)) + ": " + re.escape(problem), message), name
    assert "good.wav" not in message


def test_bad_input_skipped_counted_and_reported(tmp_path: pathlib.Path) -> None:
    expected = _bad_folder(tmp_path / "bad")
    cfg = _cfg(tmp_path / "bad", tmp_path / "dd", class_names="cat,dog", skip_bad_files=True)
    ds, info = registry.load_dataset(cfg, "train")
    assert info.num_examples == 1 and info.class_names == ("cat", "dog")
    assert [int(ex["label"]) for ex in ds.as_numpy_iterator()] == [1]
    report = _report(tmp_path / "dd")
    assert report["kept"] == 1 and report["skipped"] == len(expected)
    listed = {pathlib.Path(e["file"]).name: e["problem"] for e in report["skipped_files"]}
    assert set(listed) == set(expected)
    for name, problem in expected.items():
        assert listed[name].startswith(problem), (name, listed[name])
    assert sum(report["skipped_by_problem"].values()) == len(expected)


def test_file_changed_after_preparation_is_checked_again(tmp_path: pathlib.Path) -> None:
    """The manifest's fingerprint covers each file's size and modification time."""
    root = tmp_path / "audio"
    _write_folder(root)
    cfg = _cfg(root, tmp_path / "dd")
    registry.get_dataset_info(cfg, "train")
    (root / "a.wav").write_bytes(b"garbage")
    with pytest.raises(registry.DatasetNotPreparedError, match="input/config changed"):
        registry.get_dataset(_cfg(root, tmp_path / "dd", prepare=False), "train")
    with pytest.raises(registry.DatasetError, match=re.escape(str(root / "a.wav")) + ": not a readable audio file"):
        registry.get_dataset(cfg, "train")


def test_file_broken_while_reading_is_named(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "audio"
    _write_folder(root)
    ds = registry.get_dataset(_cfg(root, tmp_path / "dd"), "train")
    (root / "a.wav").write_bytes(b"garbage")
    with pytest.raises(Exception, match=re.escape(str(root / "a.wav"))):
        list(ds.as_numpy_iterator())


def test_missing_folder_and_column(tmp_path: pathlib.Path) -> None:
    with pytest.raises(registry.DatasetError, match=re.escape(str(tmp_path / "nowhere"))):
        registry.get_dataset(_cfg(tmp_path / "nowhere", tmp_path / "dd"), "train")
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text("filename,label\na.wav,1\n")
    with pytest.raises(registry.DatasetError, match="no label column 'speaker'"):
        registry.get_dataset(_cfg(root, tmp_path / "dd", label_key="speaker"), "train")


def test_fsdd_loads_as_audio_folder(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("shared_prepared")
    root = shared_data / "fsdd"
    cfg = _cfg(root, data_dir)
    ds, info = registry.load_dataset(cfg, "test")
    assert info.num_examples == 300 and info.num_classes == 10 and info.sample_rate == SR
    assert registry.get_dataset_info(cfg, "train").num_examples == 2700
    assert registry.get_dataset_info(cfg, "all").num_examples == 3000
    for example in ds.take(5).as_numpy_iterator():
        assert example["audio"].dtype == np.float32 and example["audio"].ndim == 1
        assert 0 <= example["label"] <= 9
    speaker = registry.get_dataset_info(_cfg(root, data_dir, label_key="speaker"), "test")
    assert speaker.num_classes == 6
    batch = next(pipeline.make_train_iterator(_cfg(root, data_dir, crop_seconds=1.0), batch_size=8, seed=0))
    assert batch["waveform"].shape == (8, SR) and set(batch["label"]) <= set(range(10))


def test_donateacry_loads_as_audio_folder(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cfg = _cfg(shared_data / "donateacry", tmp_path, group_key="device_id")
    train, test = (registry.get_dataset_info(cfg, s) for s in ("train", "test"))
    assert (train.num_examples, test.num_examples) == (359, 98)
    assert train.num_classes == 5 and "belly_pain" in train.class_names
    example = next(registry.get_dataset(cfg, "test").as_numpy_iterator())
    assert 6 * SR < len(example["audio"]) < 8 * SR


def test_integer_labels_get_a_dense_class_index(tmp_path: pathlib.Path) -> None:
    """Labels {0, 5, 96} ('05' is 5) are 3 classes, not 97; class_names maps an index back to its label."""
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text("filename,pitch\na.wav,96\nsub/b.flac,05\nc.wav,0\n")
    cfg = _cfg(root, tmp_path / "dd", label_key="pitch")
    ds, info = registry.load_dataset(cfg, "train")
    assert info.num_classes == 3 and info.class_names == ("0", "5", "96")
    index = [int(ex["label"]) for ex in ds.as_numpy_iterator()]  # files in sorted order: a, sub/b, c
    assert index == [2, 1, 0]
    assert [int(info.class_names[i]) for i in index] == [96, 5, 0]
    report = _report(tmp_path / "dd")
    assert report["num_classes"] == 3 and report["class_names"] == ["0", "5", "96"]
    assert manifest.label_mapping(["10", "9", "-2", "9"]) == ("-2", "9", "10")  # numeric order, not text order
    assert manifest.label_mapping(["b", "a", "10"]) == ("10", "a", "b")


def test_each_label_column_keeps_its_own_manifest(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a folder by one label column, then another, then the first again prepares it twice, not three times."""
    root = tmp_path / "audio"
    _write_folder(root)
    (root / "metadata.csv").write_text("filename,label,speaker\na.wav,1,ann\nsub/b.flac,2,bob\nc.wav,1,bob\n")
    calls = []
    real = manifest.prepare
    monkeypatch.setattr(manifest, "prepare", lambda raw, **k: calls.append(k["out_dir"]) or real(raw, **k))
    names = [
        registry.get_dataset_info(_cfg(root, tmp_path / "dd", label_key=key), "train").class_names
        for key in ("label", "speaker", "label")
    ]
    assert names == [("1", "2"), ("ann", "bob"), ("1", "2")]
    assert len(calls) == 2 and calls[0] != calls[1]

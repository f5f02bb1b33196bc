"""Tests of the data sources, the registry and the host-side input pipeline."""

from __future__ import annotations

import hashlib
import logging
import pathlib
import time

import numpy as np
import pytest
import soundfile

from audiossl_jax.data import pipeline, registry, subset, synthetic

SR = 16000


def _tiny_cfg(data_dir: pathlib.Path, **overrides: object):
    cfg = pipeline.default_data_config()
    cfg.name = "synthetic_audio/tiny"
    cfg.data_dir = str(data_dir)
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
        return {int(ex["seed"]): ex["audio"].tobytes() for ex in builder.as_dataset(split="train").as_numpy_iterator()}

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


def _take(cfg, n: int, **kwargs) -> list[dict[str, np.ndarray]]:
    it = pipeline.make_train_iterator(cfg, **kwargs)
    return [next(it) for _ in range(n)]


def _assert_same(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_train_iterator_determinism(tiny_dir: pathlib.Path) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.5)
    first = _take(cfg, 3, batch_size=8, seed=0)
    _assert_same(first, _take(cfg, 3, batch_size=8, seed=0))
    other = _take(cfg, 1, batch_size=8, seed=1)
    assert not np.array_equal(first[0]["waveform"], other[0]["waveform"])


@pytest.mark.parametrize("start_step", [3, 9])
def test_train_resume_is_exact(tiny_dir: pathlib.Path, start_step: int) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.5)
    uninterrupted = _take(cfg, start_step + 3, batch_size=16, seed=5)
    resumed = _take(cfg, 3, batch_size=16, seed=5, start_step=start_step)
    _assert_same(uninterrupted[start_step:], resumed)


def test_train_epochs_are_permutations(tiny_dir: pathlib.Path, tiny_train) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0)
    batches = _take(cfg, 8, batch_size=16, seed=2)
    epochs = [
        [_key(w[:n]) for b in batches[e * 4 : (e + 1) * 4] for w, n in zip(b["waveform"], b["length"])]
        for e in range(2)
    ]
    everything = sorted(_key(a) for a, _ in tiny_train)
    assert sorted(epochs[0]) == everything and sorted(epochs[1]) == everything
    assert epochs[0] != epochs[1]


def test_train_on_a_subset_of_examples(tiny_dir: pathlib.Path, tiny_train) -> None:
    """data.train_size=4 trains on exactly those 4 examples, each once per epoch; a subset
    with indices outside the split is rejected."""
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0, train_size=4, subset_seed=7)
    keep = pipeline.train_examples(cfg, 64)
    np.testing.assert_array_equal(keep, subset.subset_indices(64, 4, 7))
    batches = _take(cfg, 2, batch_size=4, seed=1)
    wanted = sorted(_key(tiny_train[i][0]) for i in keep)
    for b in batches:
        assert sorted(_key(w[:n]) for w, n in zip(b["waveform"], b["length"])) == wanted
    assert len(pipeline.train_examples(_tiny_cfg(tiny_dir, train_size=100), 64)) == 64
    src, _ = registry.load_source(cfg, "train")
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\)"):
        src.subset([0, 64])


def test_subset_indices_are_seeded_distinct_and_nested() -> None:
    a = subset.subset_indices(100, 30, seed=1)
    assert len(set(a.tolist())) == 30 and a.max() < 100 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, subset.subset_indices(100, 30, seed=1))
    assert not np.array_equal(a, subset.subset_indices(100, 30, seed=2))
    assert set(subset.subset_indices(100, 10, seed=1).tolist()) < set(a.tolist())
    assert len(subset.subset_indices(10, 30, seed=1)) == 10


def test_train_fraction_trains_on_a_seeded_subset(tiny_dir: pathlib.Path, tiny_train) -> None:
    """data.train_fraction=0.25 of 64 clips: 16 drawn by subset_seed, each once per epoch."""
    cfg = _tiny_cfg(tiny_dir, crop_seconds=4.0, train_fraction=0.25, subset_seed=3)
    keep = pipeline.train_examples(cfg, 64)
    rng = np.random.default_rng(3)  # re-derived: the first 16 of the seed's permutation
    np.testing.assert_array_equal(keep, np.sort(rng.permutation(64)[:16]))
    assert pipeline.train_examples(_tiny_cfg(tiny_dir), 64) is None
    for seed in (0, 1):  # the training seed reorders, the subset stays
        batches = _take(cfg, 8, batch_size=4, seed=seed)
        for epoch in range(2):
            got = [_key(w[:n]) for b in batches[4 * epoch : 4 * epoch + 4] for w, n in zip(b["waveform"], b["length"])]
            assert sorted(got) == sorted(_key(tiny_train[i][0]) for i in keep)
    _assert_same(batches[5:], _take(cfg, 3, batch_size=4, seed=1, start_step=5))
    half = pipeline.train_examples(_tiny_cfg(tiny_dir, train_fraction=0.5, subset_seed=3), 64)
    assert len(half) == 32 and set(keep.tolist()) < set(half.tolist())
    other = pipeline.train_examples(_tiny_cfg(tiny_dir, train_fraction=0.25, subset_seed=4), 64)
    assert not np.array_equal(keep, other)


def test_train_fraction_errors_name_the_key(tiny_dir: pathlib.Path) -> None:
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match=rf"config.data.train_fraction={fraction}"):
            pipeline.train_examples(_tiny_cfg(tiny_dir, train_fraction=fraction), 64)
    cfg = _tiny_cfg(tiny_dir, train_fraction=0.5, train_size=2)
    with pytest.raises(ValueError, match="train_fraction=0.5 and config.data.train_size=2 both restrict"):
        next(pipeline.make_train_iterator(cfg, batch_size=4, seed=0))
    with pytest.raises(ValueError, match=r"config.data.train_size=-1: must be >= 0"):
        pipeline.train_examples(_tiny_cfg(tiny_dir, train_size=-1), 64)
    assert len(pipeline.train_examples(_tiny_cfg(tiny_dir, train_fraction=0.001), 64)) == 1


def test_hosts_see_disjoint_examples_and_resume(tiny_dir: pathlib.Path, tiny_train) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.25)
    single = _take(cfg, 6, batch_size=16, seed=0)
    hosts = [_take(cfg, 6, batch_size=8, seed=0, process_index=h, process_count=2) for h in range(2)]
    for step in range(6):
        parts = [hosts[h][step] for h in range(2)]
        _assert_same([{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}], [single[step]])
    full = _take(_tiny_cfg(tiny_dir, crop_seconds=4.0), 4, batch_size=8, seed=0, process_index=1, process_count=2)
    other = _take(_tiny_cfg(tiny_dir, crop_seconds=4.0), 4, batch_size=8, seed=0, process_index=0, process_count=2)
    seen = [{_key(w[:n]) for b in bs for w, n in zip(b["waveform"], b["length"])} for bs in (other, full)]
    assert len(seen[0]) == len(seen[1]) == 32 and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {_key(a) for a, _ in tiny_train}
    _assert_same(hosts[1][4:], _take(cfg, 2, batch_size=8, seed=0, process_index=1, process_count=2, start_step=4))


def test_uniform_is_a_pure_function_of_position() -> None:
    positions = np.arange(100_000)
    u = pipeline.uniform(7, positions, 1)
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_array_equal(u[500:600], pipeline.uniform(7, positions[500:600], 1))
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 10_000) < 500), counts
    assert abs(np.corrcoef(u, pipeline.uniform(7, positions, 2))[0, 1]) < 0.02
    assert abs(np.corrcoef(u, pipeline.uniform(8, positions, 1))[0, 1]) < 0.02


def test_class_balanced_order_frequencies() -> None:
    labels = [0] * 70 + [1] * 25 + [2] * 5
    members = [np.flatnonzero(np.asarray(labels) == c) for c in range(3)] + [np.zeros(0, np.int64)]
    plain = pipeline.TrainOrder(len(labels), seed=3)
    balanced = pipeline.TrainOrder(len(labels), seed=3, class_members=members)
    positions = np.arange(30_000)
    plain_freq = np.bincount(np.asarray(labels)[plain.indices(positions)], minlength=3) / len(positions)
    freq = np.bincount(np.asarray(labels)[balanced.indices(positions)], minlength=3) / len(positions)
    np.testing.assert_allclose(plain_freq, [0.70, 0.25, 0.05])
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.015)
    np.testing.assert_array_equal(balanced.indices(positions[123:456]), balanced.indices(positions)[123:456])
    picked = balanced.indices(positions)
    assert len(np.unique(picked[np.asarray(labels)[picked] == 0])) == 70
    with pytest.raises(registry.DatasetError, match="class_balanced"):
        pipeline.TrainOrder(5, seed=0, class_members=[np.zeros(0, np.int64)])


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

    per_host = [
        list(pipeline.make_eval_iterator(cfg, batch_size=6, process_index=h, process_count=2)) for h in range(2)
    ]
    assert len(per_host[0]) == len(per_host[1]) == 3
    keys = [
        _key(w[:n]) for host in per_host for b in host for w, n, v in zip(b["waveform"], b["length"], b["valid"]) if v
    ]
    assert sorted(keys) == expected


def test_eval_centre_crop(tiny_dir: pathlib.Path, tiny_test) -> None:
    cfg = _tiny_cfg(tiny_dir, crop_seconds=0.25)
    batch = next(pipeline.make_eval_iterator(cfg, batch_size=4))
    for row, (audio, _) in zip(batch["waveform"], tiny_test[:4]):
        offset = (len(audio) - 4000 + 1) // 2
        np.testing.assert_array_equal(row, audio[offset : offset + 4000])


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
    assert set(cfg.keys()) == {
        "name",
        "data_dir",
        "manual_dir",
        "path",
        "label_key",
        "multi_label",
        "label_separator",
        "group_key",
        "class_names",
        "skip_bad_files",
        "clip_out_of_range",
        "min_seconds",
        "prepare",
        "sample_rate",
        "crop_seconds",
        "class_balanced",
        "train_fraction",
        "train_size",
        "subset_seed",
        "train_split",
        "eval_split",
    }
    assert cfg.name == "synthetic_audio" and cfg.data_dir is None and cfg.path is None
    assert pipeline.crop_samples(cfg) == 64000


def test_split_grammar_parses_and_rejects_malformed_strings() -> None:
    """Each rule parses to its parts; each malformed string is an error naming it and the grammar."""
    assert subset.parse_split("train") is None and subset.parse_split("fold:1") is None
    assert subset.parse_split("train@holdout:10:3") == subset.DerivedSplit("train", "holdout", 10, 3)
    assert subset.parse_split("curated@rest:25:0") == subset.DerivedSplit("curated", "rest", 25, 0)
    assert subset.parse_split("test@cv:4") == subset.DerivedSplit("test", "cv", fold="4")
    assert subset.parse_split("train@cv:2@holdout:10:0") == subset.DerivedSplit("train@cv:2", "holdout", 10, 0)
    assert [subset.base_name(s) for s in ("train", "!fold:2", "train@rest:10:0", "train@cv:1@rest:5:1")] == [
        "train",
        None,
        "train",
        None,
    ]
    for bad in (
        "train@holdout:0:1",
        "train@holdout:100:1",
        "train@holdout:10",
        "train@holdout:ten:1",
        "train@holdout:10:-1",
        "train@holdout:10.5:1",
        "@holdout:10:1",
        "train@cv:",
        "valid@cv:1",
        "train@folds:1",
        "train@holdout:5:1@cv:1",
        "x@y@holdout:10:1",
    ):
        with pytest.raises(
            ValueError, match=rf"split {bad!r} is malformed: .*Derived splits: '<split>@holdout:P:SEED'"
        ):
            subset.parse_split(bad)


def test_holdout_indices_sizes_disjoint_stable_and_grouped() -> None:
    """Hand-worked sizes (round(P n / 100), halves up, within [1, n - 1]); hold-out and rest
    partition the split; the same units are held out whatever the order; groups stay whole."""
    units = [f"file:clip{i:02d}.wav" for i in range(20)]
    for percent, expected in ((25, 5), (1, 1), (99, 19), (50, 10), (12, 2), (13, 3)):  # 2.4 -> 2, 2.6 -> 3
        held = subset.holdout_indices(units, percent, 7, rest=False)
        rest = subset.holdout_indices(units, percent, 7, rest=True)
        assert len(held) == expected and len(rest) == 20 - expected, percent
        assert not set(held.tolist()) & set(rest.tolist())
        assert sorted(held.tolist() + rest.tolist()) == list(range(20))
    assert len(subset.holdout_indices(units[:5], 50, 0, rest=False)) == 3  # 2.5 rounds up
    chosen = {units[i] for i in subset.holdout_indices(units, 25, 7, rest=False)}
    shuffled = [units[i] for i in np.random.default_rng(0).permutation(20)]
    assert {shuffled[i] for i in subset.holdout_indices(shuffled, 25, 7, rest=False)} == chosen
    assert {units[i] for i in subset.holdout_indices(units, 10, 7, rest=False)} < chosen  # nested in P
    assert {units[i] for i in subset.holdout_indices(units, 25, 8, rest=False)} != chosen  # the seed matters
    # Groups: re-derived with NumPy from the documented rule (SHA-256 order of "seed\0unit",
    # the shortest prefix of whole groups reaching the target).
    grouped = [f"group:spk{i % 6}" for i in range(30)] + [f"file:x{i}.wav" for i in range(10)]
    names = np.array(sorted(set(grouped)))
    digest = np.array([hashlib.sha256(f"3\0{u}".encode()).hexdigest() for u in names])
    ordered = names[np.argsort(digest, kind="stable")]
    sizes = np.array([grouped.count(u) for u in ordered])
    take = int(np.searchsorted(np.cumsum(sizes), 10)) + 1  # 25% of 40
    held = subset.holdout_indices(grouped, 25, 3, rest=False)
    assert {grouped[i] for i in held} == set(ordered[:take].tolist()) and len(held) == sizes[:take].sum() >= 10
    for g in {grouped[i] for i in held}:
        assert all(i in held for i, u in enumerate(grouped) if u == g)
    with pytest.raises(ValueError, match="at least 2 examples .* 4 examples in 1 group"):
        subset.holdout_indices(["group:a"] * 4, 50, 0, rest=False)


def test_holdout_of_synthetic_train(tiny_dir: pathlib.Path, tiny_train) -> None:
    """train@holdout:25:0 of the 64 tiny clips: 16 clips, the rest 48, together the split."""
    cfg = _tiny_cfg(tiny_dir)
    held, info = registry.load_source(cfg, "train@holdout:25:0")
    rest, rest_info = registry.load_source(cfg, "train@rest:25:0")
    assert (len(held), info.num_examples, len(rest), rest_info.num_examples) == (16, 16, 48, 48)
    assert info.split == "train@holdout:25:0" and held.split == "train@holdout:25:0"
    keys = [_key(held.read(i)) for i in range(16)] + [_key(rest.read(i)) for i in range(48)]
    assert sorted(keys) == sorted(_key(a) for a, _ in tiny_train)
    by_audio = {_key(a): label for a, label in tiny_train}
    assert [by_audio[_key(held.read(i))] for i in range(16)] == [c for (c,) in held.labels]
    assert set(held.holdout_units) | set(rest.holdout_units) == {f"seed:{1_000_000 + i}" for i in range(64)}
    with pytest.raises(registry.DatasetError, match=r"'synthetic_audio/tiny': split 'train@holdout:0:1' is malformed"):
        registry.load_source(cfg, "train@holdout:0:1")
    with pytest.raises(registry.DatasetError, match=r"no split 'train@cv:1' \(it has no folds"):
        registry.load_source(cfg, "train@cv:1")


def test_holdout_of_an_audio_folder_is_independent_of_order_and_place(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten train clips, P=30: 3 held out, 7 left; the same files whatever the metadata order and
    wherever the folder lies; rows of one group go together; configured hold-out splits of
    'train' leave only the 'test' rows unselected (the warning counts them)."""
    names = [f"c{i}.wav" for i in range(12)]
    rows = [f"{n},{i % 3},{'test' if i >= 10 else 'train'}" for i, n in enumerate(names)]
    chosen = []
    for folder, order in (("a", range(12)), ("b", np.random.default_rng(1).permutation(12))):
        root = tmp_path / folder
        root.mkdir()
        for i, n in enumerate(names):
            soundfile.write(root / n, 0.3 * np.sin(np.arange(1600) * (0.05 + 0.01 * i)), SR)
        (root / "metadata.csv").write_text("filename,label,split\n" + "\n".join(rows[i] for i in order) + "\n")
        cfg = pipeline.default_data_config()
        cfg.update(dict(name="audio_folder", path=str(root), data_dir=str(tmp_path / f"dd{folder}")))
        held, _ = registry.load_source(cfg, "train@holdout:30:5")
        rest, _ = registry.load_source(cfg, "train@rest:30:5")
        assert (len(held), len(rest)) == (3, 7)
        assert sorted(held.holdout_units + rest.holdout_units) == sorted(f"file:c{i}.wav" for i in range(10))
        chosen.append(set(held.holdout_units))
    assert chosen[0] == chosen[1]
    cfg.update(dict(train_split="train@rest:30:5", eval_split="train@holdout:30:5"))
    with caplog.at_level(logging.WARNING):
        registry.load_source(cfg, cfg.eval_split)
    assert [
        r.getMessage().split("selects (")[1].split(";")[0]
        for r in caplog.records
        if "no configured split selects" in r.getMessage()
    ] == ["'test': 2 rows"]
    root = tmp_path / "a"
    grouped = [f"{n},{i % 3},{'test' if i >= 10 else 'train'},{'g' if i < 6 else ''}" for i, n in enumerate(names)]
    (root / "metadata.csv").write_text("filename,label,split,group\n" + "\n".join(grouped) + "\n")
    cfg.update(dict(path=str(root), data_dir=str(tmp_path / "ddg")))
    held, _ = registry.load_source(cfg, "train@holdout:30:5")
    rest, _ = registry.load_source(cfg, "train@rest:30:5")
    assert len(held) + len(rest) == 10
    assert ("group:g" in held.holdout_units) != ("group:g" in rest.holdout_units)
    assert held.holdout_units.count("group:g") + rest.holdout_units.count("group:g") == 6

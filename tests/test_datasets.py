"""Every paper dataset's registry entry, prepared from a tiny fake copy of its official raw layout."""

from __future__ import annotations

import csv
import json
import pathlib
import re
from collections.abc import Callable

import numpy as np
import pytest
import soundfile

from audiossl_jax.data import datasets, pipeline, registry

SR = 16000


def _wav(path: pathlib.Path, seconds: float = 0.1, rate: int = SR, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    freq = 200 + (sum(map(ord, path.name)) % 50) * 20
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate), rate, format=fmt)


def _write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _audioset(raw: pathlib.Path) -> None:
    _write(
        raw / "class_labels_indices.csv",
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n2,/m/0jbk,"Animal"\n',
    )
    header = "# Segments csv\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n"
    for split, ids in (
        ("balanced_train", ["AAA", "BBB"]),
        ("unbalanced_train", ["CCC", "DDD", "EEE"]),
        ("eval", ["FFF"]),
    ):
        lines = [
            f'{y}, 30.000, 40.000, "/m/09x0r,/m/04rlf"' if i == 0 else f'{y}, 0.000, 10.000, "/m/0jbk"'
            for i, y in enumerate(ids)
        ]
        _write(raw / f"{split}_segments.csv", header + "\n".join(lines) + "\n")
        for y in ids:
            _wav(raw / "audio" / split / f"{y}.flac", fmt="FLAC")


def _esc50(raw: pathlib.Path) -> None:
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for target, category in ((0, "dog"), (1, "rooster")):
            src = 1000 * fold + target  # one source recording per clip, as in ESC-50 within a fold
            name = f"{fold}-{src}-A-{target}.wav"
            rows.append(f"{name},{fold},{target},{category},True,{src},A")
            _wav(raw / "audio" / name, rate=44100)
    _write(raw / "meta" / "esc50.csv", "\n".join(rows) + "\n")


def _fsdkaggle2019(raw: pathlib.Path) -> None:
    _write(raw / "sample_submission.csv", "fname,Bark,Meow,Purr\nx.wav,0,0,0\n")
    parts = {
        "train_curated_post_competition.csv": ("FSDKaggle2019.audio_train_curated", ["c1", "c2"]),
        "train_noisy_post_competition.csv": ("FSDKaggle2019.audio_train_noisy", ["n1"]),
        "test_post_competition_scoring_clips.csv": ("FSDKaggle2019.audio_test", ["t1", "t2", "t3"]),
    }
    for csv_name, (folder, names) in parts.items():
        lines = ["fname,labels"] + [f'{n}.wav,"Bark,Meow"' if i == 0 else f"{n}.wav,Purr" for i, n in enumerate(names)]
        _write(raw / "FSDKaggle2019.meta" / csv_name, "\n".join(lines) + "\n")
        for n in names:
            _wav(raw / folder / f"{n}.wav", rate=44100)


def _scenes(raw: pathlib.Path, ext: str, header: bool) -> None:
    train = [
        "audio/airport-barcelona-0-0-a.wav\tairport",
        "audio/bus-lyon-1-2-a.wav\tbus",
        "audio/park-paris-3-4-a.wav\tpark",
    ]
    test = ["audio/tram-vienna-5-6-a.wav\ttram"]
    top = "filename\tscene_label\n" if header else ""
    _write(raw / "evaluation_setup" / f"fold1_train.{ext}", top + "\n".join(train) + "\n")
    _write(raw / "evaluation_setup" / f"fold1_evaluate.{ext}", top + "\n".join(test) + "\n")
    for line in train + test:
        _wav(raw / line.split("\t")[0], rate=48000)


# The fake MagnaTagATune: one tagged clip in each directory 0-f, plus one clip with none of
# the top-50 tags in directories 1, c and e. Hand-worked tag counts: tag01-tag48 and tag54
# are on in the 16 tagged clips (16 each), tag49 in clips 0 and 1 (2), tag50 in the untagged
# clips of 1 and c (2: it ties tag49 and loses on column order), tag00 and tag51 once, tag52
# and tag53 never. So the top 50 are tag01-tag48, tag54 (16, column order), then tag49.
MTAT_TOP50 = tuple(f"tag{j:02d}" for j in range(1, 49)) + ("tag54", "tag49")
MTAT_UNTAGGED = {"1": ("tag50", "tag00"), "c": ("tag50", "tag51"), "e": ()}


def _magnatagatune(raw: pathlib.Path) -> None:
    tags = [f"tag{i:02d}" for i in range(55)]
    lines = ["\t".join(f'"{c}"' for c in ["clip_id", *tags, "mp3_path"])]  # quoted, as the official file
    clips = [
        (f"{d}/artist{i}-album-01-song-0-29.mp3", {*MTAT_TOP50[:49], *(("tag49",) if i < 2 else ())})
        for i, d in enumerate("0123456789abcdef")
    ]
    clips += [(f"{d}/other-album-02-song-30-59.mp3", set(on)) for d, on in MTAT_UNTAGGED.items()]
    for clip_id, (path, on) in enumerate(clips):
        lines.append("\t".join(f'"{c}"' for c in [clip_id, *["1" if t in on else "0" for t in tags], path]))
        _wav(raw / "mp3" / path, rate=16000, fmt="MP3")
    _write(raw / "annotations_final.csv", "\n".join(lines) + "\n")


def _kinetics700(raw: pathlib.Path) -> None:
    for split, csv_name, rows in (
        ("train", "train.csv", [("abseiling", "aaa", 5), ("zumba", "bbb", 12)]),
        ("validation", "validate.csv", [("zumba", "ccc", 0)]),
    ):
        lines = ["label,youtube_id,time_start,time_end,split"]
        for label, yid, start in rows:
            lines.append(f"{label},{yid},{start},{start + 10},{split}")
            _wav(raw / "audio" / split / f"{yid}_{start:06d}_{start + 10:06d}.wav")
        _write(raw / "annotations" / csv_name, "\n".join(lines) + "\n")


def _speech_commands(raw: pathlib.Path) -> None:
    files = [
        "yes/aa11_nohash_0.wav",
        "yes/bb22_nohash_0.wav",
        "no/aa11_nohash_1.wav",
        "zero/cc33_nohash_0.wav",
        "up/dd44_nohash_0.wav",
    ]
    for f in files:
        _wav(raw / f)
    _wav(raw / "_background_noise_" / "white_noise.wav")
    _write(raw / "validation_list.txt", "zero/cc33_nohash_0.wav\n")
    _write(raw / "testing_list.txt", "up/dd44_nohash_0.wav\n")


def _librispeech(raw: pathlib.Path) -> None:
    for speaker in ("19", "103", "1034"):
        for utt in range(4):
            _wav(raw / "train-clean-100" / speaker / "198" / f"{speaker}-198-{utt:04d}.flac", fmt="FLAC")


def _spoken_language(raw: pathlib.Path) -> None:
    for split, names in (
        ("train", ["de_f_aaa.fragment1", "en_m_bbb.fragment2", "es_f_ccc.fragment1"]),
        ("test", ["en_f_ddd.fragment1"]),
    ):
        for n in names:
            _wav(raw / split / f"{n}.flac", fmt="FLAC")


def _musan(raw: pathlib.Path) -> None:
    for kind, sub in (("music", "fma"), ("speech", "librivox"), ("noise", "free-sound")):
        for i in range(3):
            _wav(raw / kind / sub / f"{kind}-{sub}-{i:04d}.wav")


def _nsynth(raw: pathlib.Path) -> None:
    for split, notes in (
        ("train", [("bass_synthetic_033-022-050", 22, "bass"), ("guitar_acoustic_010-060-100", 60, "guitar")]),
        ("valid", [("keyboard_electronic_001-064-127", 64, "keyboard")]),
        ("test", [("vocal_synthetic_003-108-025", 108, "vocal")]),
    ):
        examples = {}
        for note, pitch, family in notes:
            examples[note] = {"pitch": pitch, "instrument_family_str": family, "instrument_str": note.split("-")[0]}
            _wav(raw / f"nsynth-{split}" / "audio" / f"{note}.wav")
        _write(raw / f"nsynth-{split}" / "examples.json", json.dumps(examples))


def _bird_audio_detection(raw: pathlib.Path) -> None:
    for subset, items in (
        ("ff1010bird", [("64486", 0), ("2525", 1), ("44981", 0)]),
        ("warblrb10k_public", [("759808e5-f824-401e-9058", 1), ("1d94fc4a-1c63-4da0-9cac", 0)]),
    ):
        lines = ["itemid,datasetid,hasbird"] + [f"{i},{subset},{h}" for i, h in items]
        _write(raw / f"{subset}_metadata.csv", "\n".join(lines) + "\n")
        for i, _ in items:
            _wav(raw / f"{subset}_wav" / "wav" / f"{i}.wav", rate=44100)


# name -> (layout writer, {split: examples}, num_classes, a check of (split, labels, class names)).
CASES: dict[str, tuple[Callable[[pathlib.Path], None], dict[str, int], int]] = {
    "audioset": (_audioset, {"balanced_train": 2, "unbalanced_train": 3, "eval": 1, "train": 3, "test": 1}, 3),
    "audioset_balanced": (_audioset, {"balanced_train": 2, "eval": 1, "train": 2, "test": 1}, 3),
    "esc50": (
        _esc50,
        {"fold:3": 2, "!fold:3": 8, "train": 8, "test": 2, "all": 10, "train@cv:3": 8, "test@cv:3": 2},
        2,
    ),
    "fsdkaggle2019": (_fsdkaggle2019, {"curated": 2, "noisy": 1, "test": 3, "train": 2}, 3),
    "dcase2019_task1a": (lambda raw: _scenes(raw, "csv", True), {"train": 3, "test": 1}, 10),
    "tut_urban_2018": (lambda raw: _scenes(raw, "txt", False), {"train": 3, "test": 1}, 10),
    "magnatagatune": (_magnatagatune, {"train": 12, "validation": 1, "test": 3}, 50),
    "kinetics700_audio": (_kinetics700, {"train": 2, "validation": 1, "test": 1}, 2),
    "speech_commands": (_speech_commands, {"train": 3, "validation": 1, "test": 1}, 35),
    "librispeech100_speaker": (_librispeech, {"all": 12}, 3),
    "spoken_language_id": (_spoken_language, {"train": 3, "test": 1}, 3),
    "musan": (_musan, {"all": 9}, 3),
    "nsynth_pitch": (_nsynth, {"train": 2, "validation": 1, "test": 1}, 128),
    "nsynth_instrument": (_nsynth, {"train": 2, "validation": 1, "test": 1}, 11),
    "bird_audio_detection": (_bird_audio_detection, {"all": 5}, 2),
}


def test_every_spec_has_a_fake_layout_test() -> None:
    assert set(CASES) == set(datasets.SPECS) == set(registry.PAPER_DATASETS)
    for spec in datasets.SPECS.values():
        assert spec.metric in ("mAP", "lwlrap", "accuracy", "macro_roc_auc", "top1_accuracy")
        assert spec.how_to_get and spec.splits


def _cfg(name: str, data_dir: pathlib.Path, **overrides: object):
    cfg = pipeline.default_data_config()
    cfg.name = name
    cfg.data_dir = str(data_dir)
    cfg.update(overrides)
    return cfg


def _labels(cfg, split: str) -> list:
    return [ex["label"].tolist() for ex in registry.get_dataset(cfg, split).as_numpy_iterator()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_builder_on_fake_layout(name: str, tmp_path: pathlib.Path) -> None:
    writer, sizes, num_classes = CASES[name]
    spec = datasets.SPECS[name]
    writer(tmp_path / "downloads" / "manual" / spec.raw_dir)
    cfg = _cfg(name, tmp_path)
    for split, size in sizes.items():
        info = registry.get_dataset_info(cfg, split)
        assert (info.num_examples, info.num_classes) == (size, num_classes), split
        assert info.metric == spec.metric and info.multi_label == spec.multi_label and info.sample_rate == SR
    report = json.loads((tmp_path / name / "prepared" / "report.json").read_text())
    assert report["skipped"] == 0 and report["kept"] > 0
    assert report["excluded"] == (3 if name == "magnatagatune" else 0)
    first = next(registry.get_dataset(cfg, next(iter(sizes))).as_numpy_iterator())
    assert abs(len(first["audio"]) - 0.1 * SR) <= 2 and np.max(np.abs(first["audio"])) > 0.25


def test_label_contents(tmp_path: pathlib.Path) -> None:
    def prepared(name: str, **overrides: object):
        writer = CASES[name][0]
        writer(tmp_path / name / "raw")
        return _cfg(name, tmp_path / name, manual_dir=str(tmp_path / name / "raw"), **overrides)

    audioset = prepared("audioset")
    info = registry.get_dataset_info(audioset, "eval")
    assert info.class_names == ("Speech", "Music", "Animal")
    assert _labels(audioset, "eval") == [[1.0, 1.0, 0.0]]
    assert _labels(prepared("fsdkaggle2019"), "curated") == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    esc = prepared("esc50")
    assert registry.get_dataset_info(esc, "test").class_names == ("dog", "rooster")
    assert sorted(_labels(esc, "fold:2")) == [0, 1]
    scenes = prepared("dcase2019_task1a")
    names = registry.get_dataset_info(scenes, "test").class_names
    assert [names[i] for i in _labels(scenes, "test")] == ["tram"]
    commands = prepared("speech_commands")
    cnames = registry.get_dataset_info(commands, "test").class_names
    assert [cnames[i] for i in _labels(commands, "test")] == ["up"]
    assert sorted(cnames[i] for i in _labels(commands, "train")) == ["no", "yes", "yes"]
    pitch = prepared("nsynth_pitch")
    assert _labels(pitch, "test") == [108]
    family = prepared("nsynth_instrument")
    assert [registry.get_dataset_info(family, "train").class_names[i] for i in _labels(family, "train")] == [
        "bass",
        "guitar",
    ]
    speakers = prepared("librispeech100_speaker")
    assert registry.get_dataset_info(speakers, "all").class_names == ("19", "103", "1034")
    split_sizes = [
        registry.get_dataset_info(speakers, s).num_examples
        for s in ("train", "validation", "test")
        if s in {datasets.hash_split(f"{sp}-198-{u:04d}") for sp in ("19", "103", "1034") for u in range(4)}
    ]
    assert sum(split_sizes) == 12


def test_hash_split_proportions() -> None:
    splits = [datasets.hash_split(f"clip-{i}") for i in range(20_000)]
    counts = {s: splits.count(s) / len(splits) for s in ("train", "validation", "test")}
    assert abs(counts["train"] - 0.8) < 0.01 and abs(counts["test"] - 0.1) < 0.01
    assert datasets.hash_split("clip-7") == splits[7]


def test_missing_clips_are_errors_or_skipped(tmp_path: pathlib.Path) -> None:
    raw = tmp_path / "downloads" / "manual" / "audioset"
    _audioset(raw)
    (raw / "audio" / "eval" / "FFF.flac").unlink()
    with pytest.raises(
        registry.DatasetError,
        match=re.escape(str(raw / "audio" / "eval" / "FFF.wav")) + ": metadata row without a file",
    ):
        registry.get_dataset_info(_cfg("audioset", tmp_path), "train")
    cfg = _cfg("audioset", tmp_path, skip_bad_files=True)
    assert registry.get_dataset_info(cfg, "train").num_examples == 3
    with pytest.raises(registry.DatasetError, match="no rows with split 'eval'"):
        registry.get_dataset_info(cfg, "test")
    report = json.loads((tmp_path / "audioset" / "prepared" / "report.json").read_text())
    assert report["skipped"] == 1 and report["resampled_from_hz"] == {}


def test_official_label_set_rejects_unknown_labels(tmp_path: pathlib.Path) -> None:
    raw = tmp_path / "downloads" / "manual" / "TUT-urban-acoustic-scenes-2018-development"
    _scenes(raw, "txt", False)
    with open(raw / "evaluation_setup" / "fold1_evaluate.txt", "a") as f:
        f.write("audio/beach-nice-0-0-a.wav\tbeach\n")
    _wav(raw / "audio" / "beach-nice-0-0-a.wav")
    with pytest.raises(registry.DatasetError, match="beach-nice-0-0-a.wav: label 'beach' is not in the label set"):
        registry.get_dataset_info(_cfg("tut_urban_2018", tmp_path), "test")


@pytest.mark.parametrize("name", ["audioset", "esc50", "nsynth_pitch"])
def test_not_prepared_message(name: str, tmp_path: pathlib.Path) -> None:
    spec = datasets.SPECS[name]
    with pytest.raises(registry.DatasetNotPreparedError) as error:
        registry.get_dataset_info(_cfg(name, tmp_path), "train")
    message = str(error.value)
    assert repr(name) in message and str(tmp_path / "downloads" / "manual" / spec.raw_dir) in message
    assert spec.how_to_get in message and "--config.data.manual_dir" in message
    assert "--config.data.name=audio_folder --config.data.path=/path/to/audio" in message
    assert ("cannot be downloaded automatically" in message) == (not spec.public_download)


def test_train_pipeline_on_builder(tmp_path: pathlib.Path) -> None:
    _audioset(tmp_path / "downloads" / "manual" / "audioset")
    cfg = _cfg("audioset", tmp_path, crop_seconds=0.05, class_balanced=True)
    batch = next(pipeline.make_train_iterator(cfg, batch_size=4, seed=0))
    assert batch["waveform"].shape == (4, 800) and batch["label"].shape == (4, 3)
    assert np.all(batch["label"].sum(1) >= 1)


def test_magnatagatune_split_top50_and_excluded_clips(tmp_path: pathlib.Path) -> None:
    """Directories 0-b train, c validation, d-f test (12:1:3, directory 9 included); the
    hand-worked top 50 in frequency order; clips without a top-50 tag excluded and counted."""
    _magnatagatune(tmp_path / "downloads" / "manual" / "magnatagatune")
    cfg = _cfg("magnatagatune", tmp_path)
    info = registry.get_dataset_info(cfg, "train")
    assert info.class_names == MTAT_TOP50 and info.num_examples == 12
    prepared = tmp_path / "magnatagatune" / "prepared"
    with open(prepared / "manifest.csv", newline="") as f:
        rows = {r["path"].split("/mp3/", 1)[1]: r for r in csv.DictReader(f)}
    expected = {d: "train" for d in "0123456789ab"} | {"c": "validation", "d": "test", "e": "test", "f": "test"}
    assert {p.split("/")[0]: r["split"] for p, r in rows.items()} == expected and len(rows) == 16
    assert rows["0/artist0-album-01-song-0-29.mp3"]["labels"] == ";".join(map(str, range(50)))
    assert rows["9/artist9-album-01-song-0-29.mp3"]["labels"] == ";".join(map(str, range(49)))
    report = json.loads((prepared / "report.json").read_text())
    assert report["excluded"] == 3 and report["skipped"] == 0 and report["kept"] == 16
    assert report["excluded_by_reason"] == {
        f"none of the 50 most frequent tags ({s})": 1 for s in ("train", "validation", "test")
    }
    assert sorted(e["file"].split("/mp3/", 1)[1].split("/")[0] for e in report["excluded_files"]) == ["1", "c", "e"]
    labels = _labels(cfg, "validation")
    assert labels == [[1.0] * 49 + [0.0]]
    with open(tmp_path / "downloads" / "manual" / "magnatagatune" / "annotations_final.csv", "a") as f:
        f.write("\t".join(["99", *["1"] * 55, "g/stray-0-29.mp3"]) + "\n")
    with pytest.raises(registry.DatasetError, match=r"clip 99 has mp3_path 'g/stray-0-29.mp3', whose directory"):
        registry.get_dataset_info(cfg, "train")


def test_esc50_five_fold_cross_validation(tmp_path: pathlib.Path) -> None:
    """train@cv:K is the four other folds, test@cv:K fold K: disjoint, together all clips, and
    the five test folds partition the dataset; a hold-out of a cross-validation train split
    stays inside it. Bad folds and datasets without folds are clear errors."""
    _esc50(tmp_path / "downloads" / "manual" / "ESC-50-master")
    cfg = _cfg("esc50", tmp_path)
    everything = set(registry.load_source(cfg, "all")[0].holdout_units)
    assert len(everything) == 10
    tested = []
    for k in range(1, 6):
        train = set(registry.load_source(cfg, f"train@cv:{k}")[0].holdout_units)
        test = set(registry.load_source(cfg, f"test@cv:{k}")[0].holdout_units)
        assert test == {f"group:{1000 * k}", f"group:{1000 * k + 1}"} and train == everything - test
        tested += sorted(test)
    assert sorted(tested) == sorted(everything)
    assert (
        registry.load_source(cfg, "train@cv:1")[0].holdout_units == registry.load_source(cfg, "train")[0].holdout_units
    )
    held, info = registry.load_source(cfg, "train@cv:2@holdout:25:0")
    rest, _ = registry.load_source(cfg, "train@cv:2@rest:25:0")
    assert (len(held), len(rest), info.split) == (2, 6, "train@cv:2@holdout:25:0")
    assert set(held.holdout_units) | set(rest.holdout_units) == everything - {"group:2000", "group:2001"}
    with pytest.raises(registry.DatasetError, match=r"split 'test@cv:6' asks for fold '6'; folds present: \['1', '2'"):
        registry.load_source(cfg, "test@cv:6")
    with pytest.raises(registry.DatasetError, match=r"split 'validation@cv:1' is malformed"):
        registry.load_source(cfg, "validation@cv:1")
    _scenes(tmp_path / "downloads" / "manual" / "TUT-urban-acoustic-scenes-2018-development", "txt", False)
    with pytest.raises(registry.DatasetError, match=r"split 'train@cv:1' is a cross-validation split, but no row"):
        registry.load_source(_cfg("tut_urban_2018", tmp_path), "train@cv:1")

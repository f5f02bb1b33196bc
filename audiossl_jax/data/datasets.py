"""The datasets of both papers as raw-layout specs: where files are, how labels and splits are read.

One generic path serves them all: a spec's `rows(raw_dir)` lists the clips of the
official layout (from the official CSV/JSON/list files), `manifest.prepare` validates
every file once, and `source.from_manifest` reads them. Nothing is downloaded: each spec
says where its raw copy must be (`<data_dir>/downloads/manual/<raw_dir>` or
`data.manual_dir`) and how to obtain it.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import pathlib
import zlib
from collections.abc import Callable
from typing import NamedTuple

from audiossl_jax.data import audio_folder, audio_io, manifest

Row = manifest.Row

SCENES_10 = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
SPEECH_COMMANDS_35 = (
    "backward",
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "eight",
    "five",
    "follow",
    "forward",
    "four",
    "go",
    "happy",
    "house",
    "learn",
    "left",
    "marvin",
    "nine",
    "no",
    "off",
    "on",
    "one",
    "right",
    "seven",
    "sheila",
    "six",
    "stop",
    "three",
    "tree",
    "two",
    "up",
    "visual",
    "wow",
    "yes",
    "zero",
)
NSYNTH_FAMILIES = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
)
HASH_SPLIT = {"train": 8, "validation": 1, "test": 1}
# MagnaTagATune's 12:1:3 split by the first directory of mp3_path (16 directories 0-f).
MTAT_SPLITS = {**dict.fromkeys("0123456789ab", "train"), "c": "validation", **dict.fromkeys("def", "test")}
MTAT_TOP_TAGS = 50


class Rows(NamedTuple):
    """What a raw layout lists: the clips, the declared label set (None: the labels that
    occur), every audio file on disk (None: no orphan check), and (path, reason) of clips
    the dataset's definition leaves out (counted in the report, not problems)."""

    rows: list[Row]
    class_names: tuple[str, ...] | None
    files: list[str] | None
    excluded: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One registry entry: description, raw layout reader, official splits, label set, metric."""

    name: str
    description: str
    raw_dir: str
    splits: tuple[str, ...]
    metric: str
    rows: Callable[[pathlib.Path], Rows]
    how_to_get: str
    public_download: bool
    multi_label: bool = False
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


def _csv(path: pathlib.Path, delimiter: str = ",", fieldnames: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a CSV/TSV; lines starting with '#' are skipped (AudioSet headers)."""
    if not path.is_file():
        raise manifest.PreparationError(f"official file missing from the raw layout: {path}")
    with open(path, newline="") as f:
        lines = [line for line in f if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter=delimiter, fieldnames=fieldnames, skipinitialspace=True)
    return [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]


def hash_split(key: str, weights: dict[str, int] = HASH_SPLIT) -> str:
    """A stable split for layouts without an official one: CRC32 of key over the weights."""
    slot = zlib.crc32(key.encode()) % sum(weights.values())
    for name, weight in weights.items():
        if slot < weight:
            return name
        slot -= weight
    raise AssertionError("unreachable")


def _find(folder: pathlib.Path, stem: str) -> str:
    """folder/stem.<ext> for the first audio extension present (default .wav)."""
    for ext in audio_io.AUDIO_EXTENSIONS:
        if (folder / (stem + ext)).is_file():
            return str(folder / (stem + ext))
    return str(folder / (stem + ".wav"))


def _audioset(raw: pathlib.Path, splits: tuple[str, ...]) -> Rows:
    classes = _csv(raw / "class_labels_indices.csv")
    name_of = {c["mid"]: c["display_name"] for c in classes}
    rows, files = [], []
    for split in splits:
        folder = raw / "audio" / split
        files += audio_folder.scan(folder) if folder.is_dir() else []
        for r in _csv(raw / f"{split}_segments.csv", fieldnames=["YTID", "start_seconds", "end_seconds", "labels"]):
            mids = [m.strip() for m in r["labels"].strip('"').split(",") if m.strip()]
            rows.append(Row(_find(folder, r["YTID"]), tuple(name_of.get(m, m) for m in mids), split))
    return Rows(rows, tuple(c["display_name"] for c in classes), files)


def _esc50(raw: pathlib.Path) -> Rows:
    meta = _csv(raw / "meta" / "esc50.csv")
    names = dict(sorted((int(r["target"]), r["category"]) for r in meta))
    rows = [
        Row(str(raw / "audio" / r["filename"]), (r["category"],), fold=r["fold"], group=r["src_file"]) for r in meta
    ]
    return Rows(rows, tuple(names.values()), audio_folder.scan(raw / "audio"))


def _fsdkaggle2019(raw: pathlib.Path) -> Rows:
    meta = raw / "FSDKaggle2019.meta"
    submission = raw / "sample_submission.csv"
    header = submission.read_text().splitlines()[0].split(",") if submission.is_file() else None
    class_names = tuple(h.strip() for h in header[1:]) if header else None
    parts = {
        "curated": ("train_curated_post_competition.csv", "FSDKaggle2019.audio_train_curated"),
        "noisy": ("train_noisy_post_competition.csv", "FSDKaggle2019.audio_train_noisy"),
        "test": ("test_post_competition_scoring_clips.csv", "FSDKaggle2019.audio_test"),
    }
    rows, files = [], []
    for split, (csv_name, folder) in parts.items():
        files += audio_folder.scan(raw / folder) if (raw / folder).is_dir() else []
        for r in _csv(meta / csv_name):
            rows.append(Row(str(raw / folder / r["fname"]), tuple(v for v in r["labels"].split(",") if v), split))
    return Rows(rows, class_names, files)


def _acoustic_scenes(raw: pathlib.Path, setup: tuple[str, str]) -> Rows:
    rows = []
    for split, list_name in zip(("train", "test"), setup):
        for r in _csv(raw / "evaluation_setup" / list_name, delimiter="\t", fieldnames=["filename", "scene_label"]):
            if r["filename"] == "filename":
                continue
            rows.append(
                Row(
                    str(raw / r["filename"]),
                    (r["scene_label"],),
                    split,
                    group=r["filename"].rsplit("/", 1)[-1].rsplit("-", 2)[0],
                )
            )
    return Rows(rows, SCENES_10, None)


def _magnatagatune(raw: pathlib.Path) -> Rows:
    """12:1:3 by directory (MTAT_SPLITS); the label set is the 50 most frequent of the 188 tags
    over all clips (ties: column order), and clips with none of them are excluded (counted)."""
    annotations = raw / "annotations_final.csv"
    meta = _csv(annotations, delimiter="\t")
    if not meta or "mp3_path" not in meta[0] or "clip_id" not in meta[0]:
        raise manifest.PreparationError(
            f"{annotations}: expected a tab-separated header with clip_id, the tag "
            "columns and mp3_path, and one row per clip"
        )
    tags = [k for k in meta[0] if k not in ("clip_id", "mp3_path")]
    counts = {t: sum(r[t] == "1" for r in meta) for t in tags}
    top = tuple(sorted(tags, key=lambda t: (-counts[t], tags.index(t)))[:MTAT_TOP_TAGS])
    rows, excluded = [], []
    for r in meta:
        directory = r["mp3_path"].split("/", 1)[0]
        if directory not in MTAT_SPLITS:
            raise manifest.PreparationError(
                f"{annotations}: clip {r['clip_id']} has mp3_path {r['mp3_path']!r}, "
                "whose directory is not one of 0-9, a-f"
            )
        path, split = str(raw / "mp3" / r["mp3_path"]), MTAT_SPLITS[directory]
        labels = tuple(t for t in top if r[t] == "1")
        if labels:
            rows.append(Row(path, labels, split))
        else:
            excluded.append((path, f"none of the {MTAT_TOP_TAGS} most frequent tags ({split})"))
    return Rows(rows, top, audio_folder.scan(raw / "mp3"), tuple(excluded))


def _kinetics700(raw: pathlib.Path) -> Rows:
    rows, labels = [], set()
    for split, csv_name in (("train", "train.csv"), ("validation", "validate.csv")):
        folder = raw / "audio" / split
        for r in _csv(raw / "annotations" / csv_name):
            stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
            rows.append(Row(_find(folder, stem), (r["label"],), split))
            if split == "train":
                labels.add(r["label"])
    return Rows(rows, tuple(sorted(labels)), None)


def _speech_commands(raw: pathlib.Path) -> Rows:
    lists = {}
    for split, list_name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        lists.update({line.strip(): split for line in (raw / list_name).read_text().splitlines() if line.strip()})
    files = [f for f in audio_folder.scan(raw) if "_background_noise_" not in f]
    rows = []
    for f in files:
        rel = str(pathlib.Path(f).relative_to(raw))
        word, base = rel.split("/", 1)
        rows.append(Row(f, (word,), lists.get(rel, "train"), group=base.split("_nohash_")[0]))
    return Rows(rows, SPEECH_COMMANDS_35, files)


def _librispeech_speaker(raw: pathlib.Path) -> Rows:
    files = audio_folder.scan(raw / "train-clean-100")
    rows = [Row(f, (pathlib.Path(f).parts[-3],), hash_split(pathlib.Path(f).stem)) for f in files]
    return Rows(rows, tuple(sorted({r.labels[0] for r in rows}, key=int)), files)


def _spoken_language(raw: pathlib.Path) -> Rows:
    rows, files = [], []
    for split in ("train", "test"):
        found = audio_folder.scan(raw / split)
        files += found
        rows += [
            Row(f, (pathlib.Path(f).name.split("_", 1)[0],), split, group=pathlib.Path(f).name.split(".fragment")[0])
            for f in found
        ]
    return Rows(rows, ("de", "en", "es"), files)


def _musan(raw: pathlib.Path) -> Rows:
    files = audio_folder.scan(raw)
    rows = [
        Row(
            f,
            (pathlib.Path(f).relative_to(raw).parts[0],),
            hash_split(pathlib.Path(f).stem),
            group=pathlib.Path(f).relative_to(raw).parts[1],
        )
        for f in files
    ]
    return Rows(rows, ("music", "noise", "speech"), files)


def _nsynth(raw: pathlib.Path, target: str) -> Rows:
    rows, files = [], []
    for split in ("train", "valid", "test"):
        folder = raw / f"nsynth-{split}"
        files += audio_folder.scan(folder / "audio")
        examples = json.loads((folder / "examples.json").read_text())
        for note, ex in sorted(examples.items()):
            label = str(ex["pitch"]) if target == "pitch" else ex["instrument_family_str"]
            rows.append(
                Row(
                    str(folder / "audio" / f"{note}.wav"),
                    (label,),
                    "validation" if split == "valid" else split,
                    group=ex["instrument_str"],
                )
            )
    names = tuple(str(p) for p in range(128)) if target == "pitch" else NSYNTH_FAMILIES
    return Rows(rows, names, files)


def _bird_audio_detection(raw: pathlib.Path) -> Rows:
    rows, files = [], []
    for subset in ("ff1010bird", "warblrb10k_public"):
        folder = raw / f"{subset}_wav" / "wav"
        files += audio_folder.scan(folder)
        for r in _csv(raw / f"{subset}_metadata.csv"):
            rows.append(
                Row(
                    str(folder / f"{r['itemid']}.wav"),
                    (r["hasbird"],),
                    hash_split(f"{subset}/{r['itemid']}"),
                    group=subset,
                )
            )
    return Rows(rows, ("0", "1"), files)


def _spec(**kwargs: object) -> DatasetSpec:
    return DatasetSpec(**kwargs)  # type: ignore[arg-type]


SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _spec(
            name="audioset",
            description="AudioSet: unbalanced (~2M) and balanced (~22k) train, eval (~20k); 527 classes, 10-s clips",
            raw_dir="audioset",
            splits=("balanced_train", "unbalanced_train", "eval"),
            metric="mAP",
            multi_label=True,
            rows=functools.partial(_audioset, splits=("balanced_train", "unbalanced_train", "eval")),
            aliases={"train": "unbalanced_train", "test": "eval"},
            public_download=False,
            how_to_get="fetch the YouTube audio of the official segment CSVs yourself (https://research.google.com/audioset/download.html) "
            "into audio/<split>/<YTID>.wav (or .flac) next to class_labels_indices.csv and <split>_segments.csv",
        ),
        _spec(
            name="audioset_balanced",
            description="AudioSet balanced train (~22k clips) and eval; 527 classes",
            raw_dir="audioset",
            splits=("balanced_train", "eval"),
            metric="mAP",
            multi_label=True,
            rows=functools.partial(_audioset, splits=("balanced_train", "eval")),
            aliases={"train": "balanced_train", "test": "eval"},
            public_download=False,
            how_to_get="as for 'audioset' (only balanced_train and eval are read)",
        ),
        _spec(
            name="esc50",
            description="ESC-50: 2000 5-s environmental clips, 50 classes, 5 folds",
            raw_dir="ESC-50-master",
            splits=("fold:1", "fold:2", "fold:3", "fold:4", "fold:5"),
            metric="accuracy",
            rows=_esc50,
            aliases={"train": "!fold:1", "test": "fold:1"},
            public_download=True,
            how_to_get="unzip https://github.com/karoldvl/ESC-50/archive/master.zip (audio/, meta/esc50.csv)",
        ),
        _spec(
            name="fsdkaggle2019",
            description="FSDKaggle2019: curated (4970), noisy (19815), test (4481); 80 classes",
            raw_dir="FSDKaggle2019",
            splits=("curated", "noisy", "test"),
            metric="lwlrap",
            multi_label=True,
            rows=_fsdkaggle2019,
            aliases={"train": "curated"},
            public_download=True,
            how_to_get="unzip the Zenodo record 3612637 archives (FSDKaggle2019.audio_*, FSDKaggle2019.meta) and the Kaggle sample_submission.csv",
        ),
        _spec(
            name="dcase2019_task1a",
            description="DCASE 2019 task 1a (TAU Urban Acoustic Scenes 2019 development), fold 1; 10 scenes",
            raw_dir="TAU-urban-acoustic-scenes-2019-development",
            splits=("train", "test"),
            metric="accuracy",
            rows=functools.partial(_acoustic_scenes, setup=("fold1_train.csv", "fold1_evaluate.csv")),
            public_download=True,
            how_to_get="unzip the Zenodo record 2589280 archives (audio/, evaluation_setup/)",
        ),
        _spec(
            name="tut_urban_2018",
            description="TUT Urban Acoustic Scenes 2018 development, fold 1; 10 scenes",
            raw_dir="TUT-urban-acoustic-scenes-2018-development",
            splits=("train", "test"),
            metric="accuracy",
            rows=functools.partial(_acoustic_scenes, setup=("fold1_train.txt", "fold1_evaluate.txt")),
            public_download=True,
            how_to_get="unzip the Zenodo record 1228142 archives (audio/, evaluation_setup/)",
        ),
        _spec(
            name="magnatagatune",
            description="MagnaTagATune: ~26k 29-s clips, top-50 tags, 12:1:3 split by directory 0-b/c/d-f",
            raw_dir="magnatagatune",
            splits=("train", "validation", "test"),
            metric="macro_roc_auc",
            multi_label=True,
            rows=_magnatagatune,
            public_download=True,
            how_to_get="join and unzip mp3.zip.001-003 into mp3/ and put annotations_final.csv next to it (https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset)",
        ),
        _spec(
            name="kinetics700_audio",
            description="Kinetics-700 audio tracks, 700 action classes",
            raw_dir="kinetics700",
            splits=("train", "validation"),
            metric="top1_accuracy",
            rows=_kinetics700,
            aliases={"test": "validation"},
            public_download=False,
            how_to_get="extract the audio of the YouTube clips listed in annotations/{train,validate}.csv into "
            "audio/{train,validation}/<youtube_id>_<start:06d>_<end:06d>.wav",
        ),
        _spec(
            name="speech_commands",
            description="Speech Commands v0.02: 35 words, official validation/testing lists",
            raw_dir="speech_commands_v0.02",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=_speech_commands,
            public_download=True,
            how_to_get="untar http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        ),
        _spec(
            name="librispeech100_speaker",
            description="LibriSpeech train-clean-100 speaker id (251 speakers), 8:1:1 by utterance hash",
            raw_dir="LibriSpeech",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=_librispeech_speaker,
            public_download=True,
            how_to_get="untar https://www.openslr.org/resources/12/train-clean-100.tar.gz (LibriSpeech/train-clean-100/)",
        ),
        _spec(
            name="spoken_language_id",
            description="Spoken language identification (de/en/es, 10-s fragments; Oponowicz)",
            raw_dir="spoken_language_id",
            splits=("train", "test"),
            metric="accuracy",
            rows=_spoken_language,
            public_download=False,
            how_to_get="download the Kaggle dataset toponowicz/spoken-language-identification and place train/ and test/ here",
        ),
        _spec(
            name="musan",
            description="MUSAN: music, speech and noise (3 classes), 8:1:1 by file hash",
            raw_dir="musan",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=_musan,
            public_download=True,
            how_to_get="untar https://www.openslr.org/resources/17/musan.tar.gz",
        ),
        _spec(
            name="nsynth_pitch",
            description="NSynth, pitch (128 MIDI classes)",
            raw_dir="nsynth",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=functools.partial(_nsynth, target="pitch"),
            public_download=True,
            how_to_get="untar nsynth-{train,valid,test}.jsonwav.tar.gz from https://magenta.tensorflow.org/datasets/nsynth",
        ),
        _spec(
            name="nsynth_instrument",
            description="NSynth, instrument family (11 classes)",
            raw_dir="nsynth",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=functools.partial(_nsynth, target="family"),
            public_download=True,
            how_to_get="as for 'nsynth_pitch'",
        ),
        _spec(
            name="bird_audio_detection",
            description="Bird Audio Detection (DCASE 2018 task 3: freefield1010 + warblr), bird / no bird, 8:1:1 by hash",
            raw_dir="bird_audio_detection",
            splits=("train", "validation", "test"),
            metric="accuracy",
            rows=_bird_audio_detection,
            public_download=True,
            how_to_get="unzip ff1010bird_wav.zip, warblrb10k_public_wav.zip and their metadata CSVs (https://dcase.community/challenge2018/task-bird-audio-detection)",
        ),
    )
}

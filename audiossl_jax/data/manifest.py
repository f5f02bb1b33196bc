"""Preparation of file-based datasets: validate every file once, write a manifest and a report.

A raw index (rows read from metadata.csv or an official CSV, plus the audio files found
on disk) becomes a `Manifest`: the usable rows with integer labels and their length at
the target rate. Every problem is either an error naming the file and the problem or,
with `skip_bad_files`, a skipped row that is counted and listed in the report
(`report.json` next to the manifest, and the log). Clips that a dataset's definition
leaves out (MagnaTagATune's clips without a top-50 tag) are counted and listed there as
`excluded`. Nothing is dropped silently.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Iterable, Sequence

from absl import logging

from audiossl_jax.data import audio_io, subset

MANIFEST_FILE = "manifest.csv"
META_FILE = "manifest.json"
REPORT_FILE = "report.json"
ALL_SPLITS = "all"


class PreparationError(ValueError):
    """Bad input found while preparing a dataset (and skipping was not allowed)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One clip as the raw layout lists it: absolute path, label strings, split/fold/group."""

    path: str
    labels: tuple[str, ...] = ()
    split: str = ""
    fold: str = ""
    group: str = ""


@dataclasses.dataclass(frozen=True)
class RawIndex:
    """What a raw layout lists; `files` (every audio file on disk) enables the orphan check.

    class_names: the declared label set, or None to take every label that occurs.
    """

    where: str
    rows: tuple[Row, ...]
    files: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    multi_label: bool = False
    unusable: tuple[tuple[str, str], ...] = ()  # (path, problem) of audio-named entries the scan cannot read
    ignored: tuple[str, ...] = ()  # other files under the root (not audio), counted in the report
    excluded: tuple[tuple[str, str], ...] = ()  # (path, reason) of clips the dataset's definition leaves out


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Usable rows: labels[i] holds class indices (empty: unlabelled); num_samples at the target rate."""

    paths: tuple[str, ...]
    labels: tuple[tuple[int, ...], ...]
    splits: tuple[str, ...]
    folds: tuple[str, ...]
    groups: tuple[str, ...]
    num_samples: tuple[int, ...]
    class_names: tuple[str, ...]
    multi_label: bool
    sample_rate: int

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> Manifest:
        """The rows `keep` (indices into this manifest), in that order."""

        def pick(values: tuple) -> tuple:
            return tuple(values[i] for i in keep)

        return dataclasses.replace(
            self,
            paths=pick(self.paths),
            labels=pick(self.labels),
            splits=pick(self.splits),
            folds=pick(self.folds),
            groups=pick(self.groups),
            num_samples=pick(self.num_samples),
        )


@dataclasses.dataclass
class Report:
    """Counts and lists of what preparation found; written as report.json."""

    where: str
    kept: int = 0
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    resampled: dict[str, int] = dataclasses.field(default_factory=dict)
    multichannel: int = 0
    clipped: int = 0
    unlabelled: int = 0
    class_names: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        kinds = collections.Counter(_kind(problem) for _, problem in self.skipped)
        reasons = collections.Counter(reason for _, reason in self.excluded)
        return {
            "where": self.where,
            "kept": self.kept,
            "skipped": len(self.skipped),
            "skipped_by_problem": dict(sorted(kinds.items())),
            "skipped_files": [{"file": f, "problem": p} for f, p in self.skipped],
            "resampled_from_hz": self.resampled,
            "mixed_to_mono": self.multichannel,
            "clipped": self.clipped,
            "unlabelled": self.unlabelled,
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "ignored": len(self.ignored),
            "ignored_files": list(self.ignored),
            "excluded": len(self.excluded),
            "excluded_by_reason": dict(sorted(reasons.items())),
            "excluded_files": [{"file": f, "reason": r} for f, r in self.excluded],
        }


def _kind(problem: str) -> str:
    """A problem message without its particulars (counts, quoted values, durations, parentheses)."""
    return re.sub(r" \(.*| of [\d.]+ s|\d+ |'[^']*' ", "", problem).strip()


def file_problem(path: str) -> str | None:
    """Why ``path`` is not a regular audio file one can open (missing, a directory, a FIFO, a dangling link)."""
    if os.path.islink(path) and not os.path.exists(path):
        return "dangling symbolic link"
    if not os.path.exists(path):
        return "metadata row without a file (file not found)"
    if os.path.isdir(path):
        return "a directory named like an audio file"
    if not os.path.isfile(path):
        return "not a regular file (FIFO, socket or device)"
    return None


def label_mapping(values: Iterable[str]) -> tuple[str, ...]:
    """The label set of the given label strings: the distinct values present, sorted.

    Integer labels sort numerically and are written without leading zeros ('07' -> '7');
    the class index of a label is its position here, so labels {0, 5, 96} give 3 classes
    (indices 0, 1, 2), not 97, and ``label_set[index]`` gives the label back.
    """
    present = {v for v in values if v != ""}
    try:
        as_int = sorted({int(v) for v in present})
    except ValueError:
        return tuple(sorted(present))
    return tuple(str(i) for i in as_int)


def _label_problem(row: Row, index: dict[str, int], multi_label: bool) -> str | None:
    if not multi_label and len(row.labels) > 1:
        return f"{len(row.labels)} labels {list(row.labels)} for a single-label dataset"
    outside = [v for v in row.labels if v not in index]
    if outside:
        return f"label {outside[0]!r} is not in the label set of {len(index)} classes"
    return None


def _canonical_label(value: str, index: dict[str, int]) -> str:
    """'07' -> '7' when the label set is integer-valued, so numeric labels match."""
    if value in index:
        return value
    try:
        return str(int(value))
    except ValueError:
        return value


def _duplicates(rows: Sequence[Row]) -> dict[str, str]:
    """{normalised path: problem} of files that several metadata rows list."""
    by_path: dict[str, list[Row]] = collections.defaultdict(list)
    for row in rows:
        by_path[os.path.normpath(row.path)].append(row)
    out = {}
    for path, group in by_path.items():
        if len(group) > 1:
            splits = sorted({r.split for r in group})
            labels = sorted({";".join(r.labels) for r in group})
            out[path] = (
                f"listed {len(group)} times in the metadata (splits {splits}, labels {labels}); keep one row per file"
            )
    return out


def prepare(
    raw: RawIndex,
    *,
    sample_rate: int,
    skip_bad_files: bool,
    out_dir: pathlib.Path,
    fingerprint: str,
    workers: int = 8,
    clip: bool = False,
    min_seconds: float = 0.0,
) -> tuple[Manifest, Report]:
    """Validates every row and file of `raw`, writes manifest + report under out_dir.

    Raises PreparationError listing every problem (file and what is wrong) unless
    skip_bad_files, in which case bad rows/files are skipped and listed in the report.
    ``clip`` accepts float audio outside [-1, 1] (clipped when read, counted);
    ``min_seconds`` is the shortest usable clip.
    """
    class_names = raw.class_names
    if class_names is None:
        class_names = label_mapping(v for r in raw.rows for v in r.labels)
    report = Report(where=raw.where, class_names=tuple(class_names), ignored=raw.ignored, excluded=raw.excluded)
    problems: list[tuple[str, str]] = []
    index = {name: i for i, name in enumerate(class_names)}
    duplicates = _duplicates(raw.rows)
    listed = {os.path.normpath(path) for path, _ in raw.excluded}
    candidates: list[Row] = []
    for row in raw.rows:
        row = dataclasses.replace(row, labels=tuple(_canonical_label(v, index) for v in row.labels))
        listed.add(os.path.normpath(row.path))
        problem = (
            duplicates.get(os.path.normpath(row.path))
            or file_problem(row.path)
            or _label_problem(row, index, raw.multi_label)
        )
        if problem:
            problems.append((row.path, problem))
            continue
        candidates.append(row)
    for path, problem in raw.unusable:
        if os.path.normpath(path) not in listed:
            problems.append((path, problem))
    for path in raw.files or ():
        if os.path.normpath(path) not in listed:
            problems.append((path, "file without a metadata row"))

    def check(row: Row) -> tuple[Row, audio_io.AudioInfo | None, str | None]:
        try:
            info = audio_io.inspect_audio(row.path, sample_rate, clip=clip, min_seconds=min_seconds)
        except audio_io.AudioDecodeError as e:
            return row, None, str(e).removeprefix(f"{row.path}: ")
        return row, info, None

    kept: list[tuple[Row, audio_io.AudioInfo]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for row, info, problem in pool.map(check, candidates):
            if problem is not None:
                problems.append((row.path, problem))
                continue
            kept.append((row, info))
            if info.sample_rate != sample_rate:
                key = str(info.sample_rate)
                report.resampled[key] = report.resampled.get(key, 0) + 1
            report.multichannel += info.channels > 1
            report.clipped += info.clipped
            report.unlabelled += not row.labels
    report.kept = len(kept)
    report.skipped = problems
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=2))
    if problems and not skip_bad_files:
        listing = "\n".join(f"  {f}: {p}" for f, p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise PreparationError(
            f"{len(problems)} bad rows/files in {raw.where}:\n{listing}{more}\nFix them, or set "
            f"--config.data.skip_bad_files=True to skip them (listed in {out_dir / REPORT_FILE})."
        )
    if not kept:
        raise PreparationError(f"no usable audio in {raw.where} (report: {out_dir / REPORT_FILE})")
    _log_report(report, out_dir)
    manifest = Manifest(
        paths=tuple(r.path for r, _ in kept),
        labels=tuple(tuple(index[v] for v in r.labels) for r, _ in kept),
        splits=tuple(r.split for r, _ in kept),
        folds=tuple(r.fold for r, _ in kept),
        groups=tuple(r.group for r, _ in kept),
        num_samples=tuple(i.num_samples for _, i in kept),
        class_names=tuple(class_names),
        multi_label=raw.multi_label,
        sample_rate=sample_rate,
    )
    save(manifest, out_dir, fingerprint)
    return manifest, report


def _log_report(report: Report, out_dir: pathlib.Path) -> None:
    shown = ", ".join(report.class_names[:10]) + (", ..." if len(report.class_names) > 10 else "")
    logging.info(
        "prepared %s: %d clips kept, %d skipped, %d resampled %s, %d mixed to mono, %d clipped, "
        "%d unlabelled, %d classes (%s), %d other files ignored, %d excluded by the dataset's definition "
        "%s (report: %s)",
        report.where,
        report.kept,
        len(report.skipped),
        sum(report.resampled.values()),
        report.resampled,
        report.multichannel,
        report.clipped,
        report.unlabelled,
        len(report.class_names),
        shown,
        len(report.ignored),
        len(report.excluded),
        report.to_json()["excluded_by_reason"],
        out_dir / REPORT_FILE,
    )
    for path, problem in report.skipped:
        logging.warning("skipped %s: %s", path, problem)


def save(manifest: Manifest, out_dir: pathlib.Path, fingerprint: str) -> None:
    """Writes manifest.csv (one row per clip) and manifest.json (label set, fingerprint)."""
    with open(out_dir / MANIFEST_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels", "split", "fold", "group", "num_samples"])
        for i in range(len(manifest)):
            writer.writerow(
                [
                    manifest.paths[i],
                    ";".join(map(str, manifest.labels[i])),
                    manifest.splits[i],
                    manifest.folds[i],
                    manifest.groups[i],
                    manifest.num_samples[i],
                ]
            )
    meta = {
        "fingerprint": fingerprint,
        "class_names": list(manifest.class_names),
        "multi_label": manifest.multi_label,
        "sample_rate": manifest.sample_rate,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta))


def load(out_dir: pathlib.Path, fingerprint: str) -> Manifest | None:
    """The saved manifest, or None when absent or prepared from different input/config."""
    try:
        meta = json.loads((out_dir / META_FILE).read_text())
        with open(out_dir / MANIFEST_FILE, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    return Manifest(
        paths=tuple(r["path"] for r in rows),
        labels=tuple(tuple(int(v) for v in r["labels"].split(";") if v) for r in rows),
        splits=tuple(r["split"] for r in rows),
        folds=tuple(r["fold"] for r in rows),
        groups=tuple(r["group"] for r in rows),
        num_samples=tuple(int(r["num_samples"]) for r in rows),
        class_names=tuple(meta["class_names"]),
        multi_label=bool(meta["multi_label"]),
        sample_rate=int(meta["sample_rate"]),
    )


def unmatched_splits(manifest: Manifest, configured: Iterable[str]) -> dict[str, int]:
    """{split value: rows} of the split values (empty included) that no configured split selects.

    Empty when the manifest has no split values; ``configured`` names like 'all' or
    'fold:1' select by other means and match nothing here.
    """
    if not any(manifest.splits):
        return {}
    counts = collections.Counter(s for s in manifest.splits if s not in set(configured))
    return dict(sorted(counts.items()))


def _cross_validation(manifest: Manifest, split: str, rule: subset.DerivedSplit, where: str) -> Manifest:
    """'train@cv:K': the rows of every fold but K; 'test@cv:K': the rows of fold K."""
    folds = sorted(set(manifest.folds) - {""})
    if not folds:
        raise PreparationError(
            f"{where}: split {split!r} is a cross-validation split, but no row carries a fold; "
            "use a dataset with folds (e.g. esc50, or an audio folder with a 'fold' column)"
        )
    if rule.fold not in folds:
        raise PreparationError(f"{where}: split {split!r} asks for fold {rule.fold!r}; folds present: {folds}")
    without = manifest.folds.count("")
    if without:
        raise PreparationError(
            f"{where}: {without} rows carry no fold, so split {split!r} cannot place them; give every row a fold"
        )
    test = rule.base == "test"
    return manifest.subset([i for i, f in enumerate(manifest.folds) if (f == rule.fold) == test])


def select(manifest: Manifest, split: str, where: str, aliases: dict[str, str] | None = None) -> Manifest:
    """Rows of `split`: a split name, 'all', 'fold:1,2' (those folds), '!fold:1' (the others),
    'train@cv:K' (every fold but K) or 'test@cv:K' (fold K).

    Without split values in the manifest every split name selects all rows.
    """
    split = (aliases or {}).get(split, split)
    if split == ALL_SPLITS:
        return manifest
    rule = subset.parse_split(split)
    if rule is not None:
        if rule.kind != subset.CV:
            raise PreparationError(f"{where}: split {split!r} is drawn by registry.load_source, not here")
        return _cross_validation(manifest, split, rule, where)
    if split.lstrip("!").startswith("fold:"):
        wanted = set(split.lstrip("!")[5:].split(","))
        folds = sorted(set(manifest.folds) - {""})
        if not folds or not wanted <= set(folds):
            raise PreparationError(f"{where}: split {split!r} asks for folds {sorted(wanted)}; folds present: {folds}")
        negate = split.startswith("!")
        return manifest.subset([i for i, f in enumerate(manifest.folds) if (f in wanted) != negate])
    available = sorted(set(manifest.splits) - {""})
    if not available:
        return manifest
    keep = [i for i, s in enumerate(manifest.splits) if s == split]
    if not keep:
        names = available + list(aliases or {})
        raise PreparationError(f"{where} has no rows with split {split!r}; splits: {names}")
    return manifest.subset(keep)

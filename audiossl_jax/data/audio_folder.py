"""Audio folders: a directory of audio files plus an optional metadata.csv becomes a dataset.

metadata.csv columns: `filename` (relative to the root), any number of label columns
(`data.label_key` picks one; with `data.multi_label` its cells hold several labels
separated by `data.label_separator`), and optional `split`, `fold` and group
(`data.group_key`) columns. Without metadata.csv every audio file under the root is
used, unlabelled. metadata.csv is UTF-8 (a byte-order mark is allowed). Preparation
(`raw_index` + `manifest.prepare`) checks every file once; the scan lists what it does
not take: other files (ignored, counted), and audio-named entries it cannot read
(unsupported formats, FIFOs, directories, dangling links: problems).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
from typing import Any

from audiossl_jax.data import audio_io, manifest

METADATA_FILE = "metadata.csv"


class AudioFolderError(ValueError):
    """A problem with an audio folder or its metadata."""


def scan(root: pathlib.Path) -> list[str]:
    """Every readable audio file under root, recursively, as sorted absolute paths."""
    return survey(root)[0]


def survey(root: pathlib.Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """What lies under root, recursively, as sorted absolute paths.

    Returns (audio files to use, (path, problem) of audio-named entries that cannot be
    read, other files that are ignored). metadata.csv at the root is neither.
    """
    files, unusable, ignored = [], [], []
    for p in sorted(root.rglob("*"), key=str):
        ext = p.suffix.lower()
        if p == root / METADATA_FILE or (p.is_dir() and ext not in audio_io.AUDIO_EXTENSIONS):
            continue
        if ext in audio_io.AUDIO_EXTENSIONS:
            problem = manifest.file_problem(str(p))
            if problem is None:
                files.append(str(p))
            else:
                unusable.append((str(p), problem))
        elif ext in audio_io.UNSUPPORTED_EXTENSIONS:
            unusable.append((str(p), audio_io.unsupported_reason(str(p))))
        else:
            ignored.append(str(p))
    return files, unusable, ignored


def _cell(row: dict[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def raw_index(
    root: str | pathlib.Path,
    *,
    label_key: str = "label",
    multi_label: bool = False,
    label_separator: str = ";",
    group_key: str = "group",
    class_names: tuple[str, ...] | None = None,
) -> manifest.RawIndex:
    """Rows of metadata.csv (or every file, unlabelled) with the files found on disk."""
    root = pathlib.Path(root).expanduser().resolve()
    if not root.is_dir():
        raise AudioFolderError(f"audio folder not found: {root} (set --config.data.path)")
    files, unusable, ignored = survey(root)
    metadata = root / METADATA_FILE
    if not metadata.is_file():
        if not files and not unusable:
            raise AudioFolderError(f"no audio files ({' '.join(audio_io.AUDIO_EXTENSIONS)}) found under {root}")
        return manifest.RawIndex(
            where=str(root),
            rows=tuple(manifest.Row(f) for f in files),
            class_names=class_names,
            multi_label=multi_label,
            unusable=tuple(unusable),
            ignored=tuple(ignored),
        )
    try:
        with open(metadata, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise AudioFolderError(
            f"{metadata} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from e
    if not rows:
        raise AudioFolderError(f"{metadata} has no rows")
    if "filename" not in columns:
        raise AudioFolderError(f"{metadata} has no 'filename' column (columns: {columns})")
    has_labels = label_key in columns
    if not has_labels and label_key != "label":
        raise AudioFolderError(f"{metadata} has no label column {label_key!r} (data.label_key); columns: {columns}")
    out = []
    for row in rows:
        value = _cell(row, label_key) if has_labels else ""
        labels = tuple(v.strip() for v in value.split(label_separator)) if multi_label else (value,)
        out.append(
            manifest.Row(
                path=str(root / _cell(row, "filename")),
                labels=tuple(v for v in labels if v),
                split=_cell(row, "split"),
                fold=_cell(row, "fold"),
                group=_cell(row, group_key),
            )
        )
    _check_groups(out, metadata, group_key)
    return manifest.RawIndex(
        where=str(metadata),
        rows=tuple(out),
        files=tuple(files),
        class_names=class_names,
        multi_label=multi_label,
        unusable=tuple(unusable),
        ignored=tuple(ignored),
    )


def _check_groups(rows: list[manifest.Row], metadata: pathlib.Path, group_key: str) -> None:
    """A group (speaker, device, ...) must not appear in two splits."""
    seen: dict[str, str] = {}
    for row in rows:
        if not row.group or not row.split:
            continue
        first = seen.setdefault(row.group, row.split)
        if first != row.split:
            raise AudioFolderError(
                f"{metadata}: group {row.group!r} (column {group_key!r}) is in splits {first!r} and "
                f"{row.split!r}; a group must stay within one split"
            )


def _stat(path: str) -> tuple[int, int] | None:
    """(size in bytes, modification time in ns) of a file, None when absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def fingerprint(raw: manifest.RawIndex, settings: dict[str, Any]) -> str:
    """A hash of the listed rows, the files on disk (with their size and modification time)
    and the settings that shape the manifest: a file changed after preparation changes it."""
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for row in raw.rows:
        h.update(repr((row.path, row.labels, row.split, row.fold, row.group, _stat(row.path))).encode())
    h.update(repr([(f, _stat(f)) for f in raw.files or ()]).encode())
    h.update(repr((raw.unusable, raw.ignored)).encode())
    if raw.excluded:  # only when present, so that the manifests of other datasets stay valid
        h.update(repr(raw.excluded).encode())
    return h.hexdigest()


def prepared_dir(data_dir: pathlib.Path, root: str | pathlib.Path, labels: dict[str, Any]) -> pathlib.Path:
    """Where the manifest of folder `root` read with the label settings `labels` lives:
    <data_dir>/audio_folder/<name>-<hash of the folder and labels>, so that each label column
    of a folder keeps its own manifest (switching columns does not prepare the folder again)."""
    root = pathlib.Path(root).expanduser().resolve()
    key = json.dumps([str(root), labels], sort_keys=True)
    return data_dir / "audio_folder" / f"{root.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

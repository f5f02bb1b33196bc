"""Embeds every audio file of a folder, whole: ``python -m audiossl_jax.embed``.

    python -m audiossl_jax.embed --model=runs/demo --input=my_audio --out=emb.parquet [--layers=all]

``--model`` is a training workdir (latest checkpoint) or an export. Every file the
loader reads (``data.audio_io.AUDIO_EXTENSIONS``, any rate, mixed to mono) is embedded
whole, by windows (``inference.embed_sounds``). Files that cannot be used (formats
libsndfile does not decode such as .m4a, unreadable or empty files, sounds shorter than
one embedding step) and other files are listed with the reason in ``OUT.skipped.tsv``
and counted in the output; none is dropped silently.

Output, one row per frame (timestamp embedding):

* ``.parquet``: columns ``file`` (relative to --input), ``frame``, ``timestamp_ms``,
  ``embedding`` (fixed-size list of D float32) and, with ``--layers=all``, ``layer_<i>``
  (block i's output); the schema metadata key ``audiossl_jax`` holds the model, the
  counts and the skipped files (JSON);
* ``.npz``: ``files`` [F], ``offsets`` [F + 1] (file f's frames are rows
  offsets[f]:offsets[f + 1]), ``timestamp_ms`` [N], ``embedding`` [N, D], ``layer_<i>``
  [N, D_i] and ``meta`` (the same JSON).

Work is written in parts (``OUT.parts/``, ``--files_per_part`` files each) as it goes; a
rerun with the same arguments continues after the last complete part, and the parts are
removed once OUT is written.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from audiossl_jax import inference  # noqa: E402
from audiossl_jax.data import audio_folder, audio_io  # noqa: E402
from audiossl_jax.evaluation import embeddings  # noqa: E402

FLAGS = flags.FLAGS
FORMATS = (".parquet", ".npz")


def define_flags() -> None:
    """The command's flags; defined only when it runs."""
    flags.DEFINE_string("model", None, "Training workdir or export directory.", required=True)
    cli.define_step("Checkpoint step of a workdir; default: the latest.")
    flags.DEFINE_string("input", None, "Folder of audio files (searched recursively).", required=True)
    cli.define_out("Output file: .parquet or .npz.")
    flags.DEFINE_enum("layers", "last", ["last", "all"], "'all' also writes every block's output.")
    cli.define_batch_windows("Windows embedded at once (bounds memory).")
    flags.DEFINE_integer("files_per_part", 32, "Files per resumable part.")


def skipped_path(out: pathlib.Path) -> pathlib.Path:
    return out.with_name(out.name + ".skipped.tsv")


def parts_dir(out: pathlib.Path) -> pathlib.Path:
    return out.with_name(out.name + ".parts")


def _save_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.rename(path)


def embed_part(
    encoder: Any, root: pathlib.Path, files: list[str], *, layers: bool, batch_windows: int
) -> dict[str, np.ndarray]:
    """Embeds ``files`` (absolute paths): per-file frames joined, plus the files that failed and why."""

    sounds, names, failed = [], [], []
    for path in files:
        rel = pathlib.Path(path).relative_to(root).as_posix()
        try:
            sound = audio_io.read_audio(path, encoder.sample_rate)
        except audio_io.AudioDecodeError as e:
            failed.append((rel, str(e)))
            continue
        if encoder.num_frames(len(sound)) == 0:
            failed.append(
                (
                    rel,
                    f"{len(sound) / encoder.sample_rate * 1000:.1f} ms is shorter than one embedding "
                    f"step ({encoder.step_samples / encoder.sample_rate * 1000:.0f} ms)",
                )
            )
            continue
        sounds.append(sound)
        names.append(rel)
    result = inference.embed_sounds(encoder, sounds, layers=layers, batch_windows=batch_windows) if sounds else []
    d = encoder.embedding_size
    part = {
        "files": np.asarray(names, dtype=str),
        "num_frames": np.asarray([len(r.frames) for r in result], np.int64),
        "timestamp_ms": np.concatenate([r.times * 1000 for r in result]).astype(np.float32)
        if result
        else np.zeros((0,), np.float32),
        "embedding": np.concatenate([r.frames for r in result]) if result else np.zeros((0, d), np.float32),
        "failed_files": np.asarray([f for f, _ in failed], dtype=str),
        "failed_reasons": np.asarray([r for _, r in failed], dtype=str),
    }
    for i in range(len(result[0].layers) if result else 0):
        part[f"layer_{i}"] = np.concatenate([r.layers[i] for r in result])
    return part


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Parts -> one set of arrays with ``offsets``; a part without layers has no frames, so it adds none."""
    keys = sorted({k for p in parts for k in p} - {"num_frames"})
    merged = {k: np.concatenate([p[k] for p in parts if k in p]) for k in keys}
    counts = np.concatenate([p["num_frames"] for p in parts])
    merged["offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return merged


def write_output(out: pathlib.Path, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Writes the merged arrays as .npz or .parquet (module docstring)."""
    layer_keys = sorted((k for k in data if k.startswith("layer_")), key=lambda k: int(k.split("_")[1]))
    tmp = out.with_name(out.name + ".tmp" + out.suffix)
    if out.suffix == ".npz":
        np.savez(
            tmp,
            files=data["files"],
            offsets=data["offsets"],
            timestamp_ms=data["timestamp_ms"],
            embedding=data["embedding"],
            meta=json.dumps(meta),
            **{k: data[k] for k in layer_keys},
        )
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        counts = np.diff(data["offsets"])
        columns = {
            "file": pa.array(np.repeat(data["files"], counts).tolist(), pa.string()),
            "frame": pa.array(np.concatenate([np.arange(c) for c in counts]) if len(counts) else [], pa.int32()),
            "timestamp_ms": pa.array(data["timestamp_ms"], pa.float32()),
        }
        for key in ["embedding", *layer_keys]:
            x = np.ascontiguousarray(data[key], np.float32)
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
        table = pa.table(columns).replace_schema_metadata({"audiossl_jax": json.dumps(meta)})
        pq.write_table(table, tmp)
    tmp.rename(out)


def run(
    model: str,
    root: str | pathlib.Path,
    out: str | pathlib.Path,
    *,
    step: int | None = None,
    layers: bool = False,
    batch_windows: int = 16,
    files_per_part: int = 32,
) -> dict[str, Any]:
    """Embeds the folder ``root`` into ``out`` (module docstring); returns the output's metadata."""

    root, out = pathlib.Path(root).absolute(), pathlib.Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"--out={out}: the output must end in {' or '.join(FORMATS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"--input={root}: not a folder")
    files, unusable, ignored = audio_folder.survey(root)
    skipped = [(pathlib.Path(p).relative_to(root).as_posix(), why) for p, why in unusable]
    skipped += [
        (pathlib.Path(p).relative_to(root).as_posix(), "not an audio file extension the loader reads") for p in ignored
    ]
    encoder = inference.load(model, step)
    setup = {
        "model": encoder.source,
        "input": str(root),
        "layers": layers,
        "files_per_part": files_per_part,
        "files": hashlib.sha256("\n".join(files).encode()).hexdigest(),
    }
    work = parts_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    recorded = work / "setup.json"
    if recorded.exists() and json.loads(recorded.read_text()) != setup:
        raise ValueError(
            f"{work} holds parts of another run (other model, folder, files or --layers); delete it "
            "or choose another --out"
        )
    recorded.write_text(json.dumps(setup))
    chunks = [files[i : i + files_per_part] for i in range(0, len(files), files_per_part)] or [[]]
    progress = embeddings.ProgressLog(f"embedding {root}", unit="files")
    parts, done = [], 0
    for i, chunk in enumerate(chunks):
        path = work / f"part-{i:05d}.npz"
        if path.exists():
            with np.load(path) as f:
                parts.append(dict(f))
        else:
            parts.append(embed_part(encoder, root, chunk, layers=layers, batch_windows=batch_windows))
            _save_atomic(path, parts[-1])
        done += len(chunk)
        progress(done, len(files))
    data = _merge(parts)
    skipped += list(zip(data.pop("failed_files").tolist(), data.pop("failed_reasons").tolist()))
    meta = {
        "model": encoder.source,
        "input": str(root),
        "sample_rate": encoder.sample_rate,
        "embedding_size": encoder.embedding_size,
        "step_ms": encoder.step_samples / encoder.sample_rate * 1000,
        "window_samples": encoder.window_samples,
        "layers": layers,
        "files_embedded": len(data["files"]),
        "files_skipped": len(skipped),
        "skipped": [{"file": f, "reason": r} for f, r in sorted(skipped)],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped_path(out).write_text("file\treason\n" + "".join(f"{f}\t{r}\n" for f, r in sorted(skipped)))
    write_output(out, data, meta)
    shutil.rmtree(work)
    return meta


def main(argv: list[str]) -> None:
    cli.start(argv)
    with cli.user_errors(FileNotFoundError, ValueError):
        meta = run(
            FLAGS.model,
            FLAGS.input,
            FLAGS.out,
            step=FLAGS.step,
            layers=FLAGS.layers == "all",
            batch_windows=FLAGS.batch_windows,
            files_per_part=FLAGS.files_per_part,
        )
    if meta["files_skipped"]:
        logging.warning(
            "%d file(s) not embedded; the reasons are in %s",
            meta["files_skipped"],
            skipped_path(pathlib.Path(FLAGS.out)),
        )
    print(
        f"embedded {meta['files_embedded']} file(s) into {FLAGS.out} ({meta['files_skipped']} skipped, "
        f"listed in {skipped_path(pathlib.Path(FLAGS.out))})"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)

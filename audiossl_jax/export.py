"""Exports a run's encoder: ``python -m audiossl_jax.export --workdir=RUN --out=DIR``.

DIR holds

* ``export.json``: the format version, the source run and step, the parameter count and
  the embedding geometry (sample rate, window, step, D);
* ``config.json``: the run's config, as in the workdir;
* ``variables/``: the encoder's variables only (parameters, and BatchNorm statistics for
  the CNN), an Orbax checkpoint without optimizer state or RNG. ``inference.load``,
  ``hear.load_model`` and fine-tuning (``--config.task.pretrained_workdir=DIR``) read it;
* ``saved_model/``: a TensorFlow SavedModel made with ``jax.experimental.jax2tf`` (native
  serialization) that needs no JAX. Signatures ``timestamp_embeddings`` (audio [b, n]
  float32 -> ``embeddings`` [b, T, D], ``timestamps`` [b, T] ms) and ``scene_embeddings``
  (-> ``embeddings`` [b, D]) take any batch and length: the audio is cut into windows of
  the training crop inside the graph and embedded ``batch_windows`` windows at a time
  (``tf.map_fn``), exactly as ``inference.embed_sounds`` does.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Sequence
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

from absl import app, flags, logging  # noqa: E402

from audiossl_jax import inference  # noqa: E402
from audiossl_jax.train import restore  # noqa: E402

FLAGS = flags.FLAGS
SAVED_MODEL_DIR = "saved_model"


def define_flags() -> None:
    """The command's flags; defined only when it runs."""
    cli.define_workdir(cli.RUN_DIR_HELP)
    cli.define_step()
    cli.define_out("Output directory (must not exist yet).")
    flags.DEFINE_bool("saved_model", True, "Also write the TensorFlow SavedModel.")
    cli.define_batch_windows("Windows the SavedModel embeds at once (bounds its memory).")
    flags.DEFINE_list("platforms", ["cpu", "cuda"], "Platforms the SavedModel is serialized for.")


def write_variables(encoder: Any, run_config: Any, out: pathlib.Path) -> dict[str, Any]:
    """Writes ``variables/``, ``config.json`` (``run_config``) and ``export.json``; returns the metadata."""
    import jax
    import orbax.checkpoint as ocp

    variables = jax.device_get(encoder.variables)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(out.absolute() / restore.VARIABLES_DIR, variables)
    meta = {
        "format_version": restore.FORMAT_VERSION,
        "workdir": encoder.source.get("workdir"),
        "step": encoder.source.get("step"),
        "sample_rate": encoder.sample_rate,
        "embedding_size": encoder.embedding_size,
        "window_samples": encoder.window_samples,
        "step_samples": encoder.step_samples,
        "parameters": int(sum(x.size for x in jax.tree.leaves(variables["params"]))),
    }
    (out / restore.CONFIG_FILE).write_text(run_config.to_json_best_effort(indent=2))
    (out / restore.EXPORT_FILE).write_text(json.dumps(meta, indent=1))
    return meta


def saved_model_module(encoder: Any, batch_windows: int, platforms: Sequence[str]) -> Any:
    """A ``tf.Module`` with the two serving functions (module docstring)."""
    import jax
    import tensorflow as tf
    from jax.experimental import jax2tf

    w, c, step = encoder.window_samples, batch_windows, encoder.step_samples
    hop, sr = encoder.frontend.hop_length, encoder.sample_rate
    first_centre = float(encoder.frame_times(1)[0] * 1000.0)
    cnn = encoder.is_cnn
    forward = encoder.forward_fn(False)
    variables = jax.device_get(encoder.variables)

    def frames_only(v: Any, waveform: Any, length: Any) -> Any:
        return forward(v, waveform, length)[0]

    converted = jax2tf.convert(frames_only, with_gradient=False, native_serialization_platforms=tuple(platforms))
    abstract = jax.eval_shape(
        frames_only, variables, jax.ShapeDtypeStruct((c, w), "float32"), jax.ShapeDtypeStruct((c,), "int32")
    )
    per_window = abstract.shape[1]

    class Exported(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="audiossl_jax_encoder")
            self.variables_tree = tf.nest.map_structure(tf.Variable, variables)
            self.sample_rate = tf.constant(sr)
            self.embedding_size = tf.constant(abstract.shape[-1])

        def _timestamps(self, audio: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            b, n = tf.shape(audio)[0], tf.shape(audio)[1]
            num_frames = n // step
            if cnn:
                num_frames = tf.where(n >= hop, tf.maximum(num_frames, 1), num_frames)
            tf.debugging.assert_positive(num_frames, message=f"audio shorter than one embedding step ({step} samples)")
            k = tf.maximum((n + w - 1) // w, 1)
            windows = tf.reshape(tf.pad(audio, [[0, 0], [0, k * w - n]]), [b * k, w])
            lengths = tf.tile(tf.clip_by_value(n - tf.range(k) * w, 0, w), [b])
            m = b * k
            chunks = (m + c - 1) // c
            windows = tf.reshape(tf.pad(windows, [[0, chunks * c - m], [0, 0]]), [chunks, c, w])
            lengths = tf.reshape(tf.pad(lengths, [[0, chunks * c - m]]), [chunks, c])
            out = tf.map_fn(
                lambda x: converted(self.variables_tree, x[0], x[1]),
                (windows, lengths),
                fn_output_signature=tf.TensorSpec([c, per_window, abstract.shape[-1]], tf.float32),
            )
            frames = tf.reshape(out, [chunks * c, per_window, abstract.shape[-1]])[:m]
            frames = tf.reshape(frames, [b, k * per_window, abstract.shape[-1]])[:, :num_frames]
            times = first_centre + tf.cast(tf.range(num_frames), tf.float32) * (step / sr * 1000.0)
            return frames, tf.tile(times[None], [b, 1])

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")], autograph=False)
        def timestamp_embeddings(self, audio: tf.Tensor) -> dict[str, tf.Tensor]:
            frames, times = self._timestamps(audio)
            return {"embeddings": frames, "timestamps": times}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")], autograph=False)
        def scene_embeddings(self, audio: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"embeddings": tf.reduce_mean(self.timestamp_embeddings(audio)["embeddings"], axis=1)}

    return Exported()


def write_saved_model(encoder: Any, out: pathlib.Path, *, batch_windows: int, platforms: Sequence[str]) -> None:
    """Writes ``saved_model/`` with the ``timestamp_embeddings`` and ``scene_embeddings`` signatures."""
    import tensorflow as tf

    module = saved_model_module(encoder, batch_windows, platforms)
    tf.saved_model.save(
        module,
        str(out / SAVED_MODEL_DIR),
        signatures={"timestamp_embeddings": module.timestamp_embeddings, "scene_embeddings": module.scene_embeddings},
    )


def directory_bytes(path: pathlib.Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path,
    *,
    step: int | None = None,
    saved_model: bool = True,
    batch_windows: int = 16,
    platforms: Sequence[str] = ("cpu", "cuda"),
) -> dict[str, Any]:
    """Exports the encoder of ``workdir`` to ``out`` (module docstring); returns the metadata.

    ``out`` must not exist (it is written in a temporary sibling and renamed when complete).
    """

    out = pathlib.Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; pass a new --out (an export is never overwritten)")
    if restore.is_export(workdir):
        raise ValueError(f"{workdir} is already an export; pass the training workdir")
    encoder = inference.load(workdir, step)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    meta = write_variables(encoder, restore.load_config(workdir), partial)
    if saved_model:
        write_saved_model(encoder, partial, batch_windows=batch_windows, platforms=platforms)
    partial.rename(out)
    return meta


def main(argv: list[str]) -> None:
    cli.start(argv)
    with cli.user_errors(FileNotFoundError, FileExistsError, ValueError):
        meta = export(
            FLAGS.workdir,
            FLAGS.out,
            step=FLAGS.step,
            saved_model=FLAGS.saved_model,
            batch_windows=FLAGS.batch_windows,
            platforms=FLAGS.platforms,
        )
    out = pathlib.Path(FLAGS.out)
    run = directory_bytes(pathlib.Path(FLAGS.workdir))
    logging.info("exported %s (step %s, %d parameters) to %s", FLAGS.workdir, meta["step"], meta["parameters"], out)
    print(
        f"export: {out} ({directory_bytes(out) / 1e6:.1f} MB; variables "
        f"{directory_bytes(out / 'variables') / 1e6:.1f} MB) from {FLAGS.workdir} ({run / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)

"""Embeds a whole dataset split once with a pretrained encoder and caches it as .npz.

    python -m audiossl_jax.evaluation.embed --workdir=runs/demo --data=synthetic_audio \
        --split=test --out=emb/demo_test.npz [--frames] [--untrained]
    python -m audiossl_jax.evaluation.embed ... --split=train,test --out=emb/demo_{split}.npz

Several comma-separated splits are embedded in one process: the model is loaded and its
forward compiled once, and each split is written to ``--out`` with ``{split}`` replaced
by its name. Each file holds ``scene`` [N, D], ``label`` [N] (class indices),
``class_names`` [C] (``class_names[label]`` is the dataset's original label) and, with
--frames, ``frames`` [N, T, D], ``frame_valid`` [N, T] and ``times`` [T] (seconds), plus
``meta`` (a JSON string naming the checkpoint, step, data and split).
"""

from __future__ import annotations

import json
import pathlib

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from audiossl_jax.data import pipeline, registry  # noqa: E402
from audiossl_jax.evaluation import embeddings  # noqa: E402
from audiossl_jax.train import restore  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags; defined only when it runs, so importing this module defines none."""
    cli.define_workdir(cli.RUN_DIR_HELP)
    cli.define_step()
    flags.DEFINE_bool("untrained", False, "Embed with a random initialisation of the run's model instead.")
    flags.DEFINE_string("data", "synthetic_audio", "Dataset name (config.data.name), e.g. audio_folder.")
    flags.DEFINE_string("data_path", None, "Folder for data=audio_folder.")
    flags.DEFINE_string("label_key", "label", "metadata.csv column holding the label (audio_folder).")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
    flags.DEFINE_string("split", "test", "Split to embed, or several comma-separated (one process, one compilation).")
    flags.DEFINE_float("crop_seconds", 10.0, "Centre crop (zero-padded when shorter) in seconds.")
    flags.DEFINE_integer("batch_size", 16, "Batch size; must divide over the local devices.")
    flags.DEFINE_bool("frames", False, "Also store frame embeddings and their timestamps.")
    cli.define_out("Output .npz file; '{split}' in it becomes the split (needed with several).")


def data_config(
    name: str,
    *,
    path: str | None = None,
    label_key: str = "label",
    data_dir: str | None = None,
    crop_seconds: float = 10.0,
    sample_rate: int = 16000,
) -> ml_collections.ConfigDict:
    """An evaluation data config (see ``data.pipeline.default_data_config``)."""

    cfg = pipeline.default_data_config()
    cfg.name, cfg.label_key, cfg.crop_seconds, cfg.sample_rate = name, label_key, crop_seconds, sample_rate
    if path is not None:
        cfg.path = path
    if data_dir is not None:
        cfg.data_dir = data_dir
    return cfg


# The data config keys that error messages name as --config.data.<key> (the training
# commands' overrides), and this command's flag for each.
CONFIG_FLAGS = {
    "--config.data.name": "--data",
    "--config.data.path": "--data_path",
    "--config.data.label_key": "--label_key",
    "--config.data.data_dir": "--data_dir",
}


def with_own_flags(message: str) -> str:
    """``message`` with every ``--config.data.<key>`` hint replaced by this command's flag for it."""
    for config_flag, flag in CONFIG_FLAGS.items():
        message = message.replace(config_flag, flag)
    return message


SPLIT_FIELD = "{split}"


def output_paths(out: str, split_flag: str) -> dict[str, pathlib.Path]:
    """{split: output file} of ``--split`` (comma-separated) and ``--out`` (``{split}`` replaced by the split,
    '/' in it by '_'); ValueError when several splits would share one file."""
    splits = [s.strip() for s in split_flag.split(",") if s.strip()]
    if not splits or len(set(splits)) != len(splits):
        raise ValueError(f"--split={split_flag!r}: give one split or several distinct comma-separated ones")
    if len(splits) > 1 and SPLIT_FIELD not in out:
        raise ValueError(
            f"--out={out!r} names one file for {len(splits)} splits; put {SPLIT_FIELD} in it "
            f"(e.g. --out=emb/{SPLIT_FIELD}.npz)"
        )
    return {s: pathlib.Path(out.replace(SPLIT_FIELD, s.replace("/", "_"))) for s in splits}


def main(argv: list[str]) -> None:
    cli.start(argv)
    import numpy as np

    step = FLAGS.step
    with cli.user_errors(registry.DatasetError, FileNotFoundError, ValueError, rewrite=with_own_flags):
        outs = output_paths(FLAGS.out, FLAGS.split)
        run_config = restore.load_config(FLAGS.workdir)
        data_cfg = data_config(
            FLAGS.data,
            path=FLAGS.data_path,
            label_key=FLAGS.label_key,
            data_dir=FLAGS.data_dir,
            crop_seconds=FLAGS.crop_seconds,
            sample_rate=int(run_config.frontend.sample_rate),
        )
        # A dataset problem in any split stops us before the model loads.
        infos = {split: registry.get_dataset_info(data_cfg, split) for split in outs}
        if FLAGS.untrained:
            task, variables = embeddings.init_encoder(run_config)
        else:
            step = restore.latest_step(FLAGS.workdir) if step is None else step
            task, variables = embeddings.load_encoder(FLAGS.workdir, step)
        fn = embeddings.embed_fn(task)  # compiled once, for every split
        for split, out in outs.items():
            result = embeddings.embed_dataset(
                task,
                variables,
                data_cfg,
                split,
                batch_size=FLAGS.batch_size,
                keep_frames=FLAGS.frames,
                progress=embeddings.ProgressLog(f"embedding {FLAGS.data}:{split}"),
                fn=fn,
            )
            meta = {
                "workdir": str(FLAGS.workdir),
                "step": step,
                "untrained": FLAGS.untrained,
                "data": data_cfg.to_dict(),
                "split": split,
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, meta=json.dumps(meta), class_names=np.asarray(infos[split].class_names, str), **result)
            logging.info("wrote %s: scene %s", out, result["scene"].shape)


if __name__ == "__main__":
    define_flags()
    app.run(main)

"""The evaluation protocol of Tagliasacchi et al. (2020) as one command.

    python -m audiossl_jax.evaluation.protocol --config=configs/eval_protocol.py:demo --workdir=runs/protocol

Runs every (encoder, task, arm, training set, replica) of the config with one of two
recipes (``config.recipe``):

* ``slices`` (the paper's): random slices of ``slices.seconds`` (975 ms) carrying the
  clip's label in training and evaluation; arm ``frozen`` trains a linear layer on the
  frozen encoder, ``finetuned`` the whole model, both with Adam at ``slices.learning_rate``
  for ``slices.total_steps``; scored by slice accuracy, clip accuracy (mean of slice
  scores) beside it (``evaluation.slices``);
* ``clips`` (faster; what HEAR does): arm ``frozen`` is a linear probe (L-BFGS) on the
  encoder's cached clip embeddings (``evaluation.linear``), ``finetuned`` the fine-tuning
  recipe of ``evaluation.finetune`` on whole crops.

CNN and conformer encoders; training sets ``full`` and ``subset`` (``n_train`` random examples, the same for
every encoder of a replica), ``replicas`` seeds. Writes into ``--workdir``:

* ``results.csv``: one row per run, appended as each finishes; a rerun skips the rows
  already there, so an interrupted protocol resumes where it stopped;
* ``table.md``: per (arm, training set), rows = encoders, columns = tasks (score, mean
  +- std over replicas) and the average normalised score with its bootstrap interval,
  laid out like the paper's Table I;
* ``figure.png``: normalised score per task and averaged, one bar per encoder, like its Fig. 2;
* ``summary.json``: the numbers of the table.

Normalised score of encoder e on task t (the paper's eq. 1), the same references for both
arms: (s_e - s_zero) / (s_one - s_zero), with s_zero the untrained encoder's frozen arm
(random frozen encoder + trained linear head) and s_one its fine-tuned arm (encoder and
head trained from scratch on the task), per task and training set, s the mean over
replicas. The protocol always runs both arms of ``config.untrained`` so both references
exist. The average over tasks has a percentile interval from ``bootstrap.resamples``
resamples of the tasks with replacement (seeded).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import logging
import math
import os
import pathlib
import sys
import textwrap
import time
from typing import Any, Iterable, Mapping

from audiossl_jax import logs  # first: quiets TensorFlow before it loads  # isort: skip

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

ARMS = ("frozen", "finetuned")
TRAIN_SETS = ("full", "subset")
FIELDS = ("encoder", "task", "arm", "train_set", "replica", "seed", "num_train", "metric", "score", "clip_score",
          "seconds")
RECIPES = ("slices", "clips")
CSV_FILE, TABLE_FILE, FIGURE_FILE, SUMMARY_FILE = "results.csv", "table.md", "figure.png", "summary.json"
TRAIN_PREFIX, UNTRAINED_PREFIX = "train:", "untrained:"


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of the protocol: which encoder, task, arm, training set and replica."""

    encoder: str
    task: str
    arm: str
    train_set: str
    replica: int

    def key(self) -> tuple[str, str, str, str, int]:
        return (self.encoder, self.task, self.arm, self.train_set, self.replica)


# ---------------------------------------------------------------------------- config


def validate(config: ml_collections.ConfigDict) -> None:
    """Rejects an inconsistent protocol config; errors name the key and what to do."""
    from audiossl_jax.config_lib import require

    names = list(config.encoders.keys())
    require(config.untrained in names, "untrained", config.untrained, f"must name one of config.encoders {names}.")
    require(config.recipe in RECIPES, "recipe", config.recipe, f"use one of {RECIPES}.")
    if config.recipe == "slices":
        sl = config.slices
        for key in ("seconds", "learning_rate", "total_steps", "batch_size", "per_clip"):
            require(sl[key] > 0, f"slices.{key}", sl[key], "must be > 0 (the paper: 0.975 s, 1e-4, 100k steps).")
    require(len(config.tasks) >= 1, "tasks", list(config.tasks.keys()), "needs at least one task.")
    require(len(config.arms) >= 1 and set(config.arms) <= set(ARMS), "arms", tuple(config.arms), f"use a subset of {ARMS}.")
    require(len(config.train_sets) >= 1 and set(config.train_sets) <= set(TRAIN_SETS), "train_sets",
            tuple(config.train_sets), f"use a subset of {TRAIN_SETS}.")
    require(config.replicas >= 1, "replicas", config.replicas, "must be >= 1 (the paper: 4).")
    require(config.n_train >= 1, "n_train", config.n_train, "must be >= 1 (the paper: 1000).")
    require(config.bootstrap.resamples >= 1, "bootstrap.resamples", config.bootstrap.resamples, "must be >= 1.")
    require(0 < config.bootstrap.interval < 1, "bootstrap.interval", config.bootstrap.interval, "must lie in (0, 1).")
    for task, keys in config.tasks.items():
        for key, off in (("train_fraction", 1.0), ("train_size", 0)):
            require(keys.get(key, off) == off, f"tasks.{task}.{key}", keys.get(key),
                    "the protocol sets the training examples itself (config.train_sets, config.n_train); remove it.")
    for name, spec in config.encoders.items():
        require(isinstance(spec, str) and bool(spec), f"encoders.{name}", spec,
                f"give a run directory, '{TRAIN_PREFIX}<config.py[:variant]>' or '{UNTRAINED_PREFIX}<config.py[:variant]>'.")
        if not spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)) and not (pathlib.Path(spec) / "config.json").is_file():
            raise FileNotFoundError(
                f"config.encoders.{name}={spec!r}: {pathlib.Path(spec) / 'config.json'} not found; give the "
                f"directory of a training run, or '{TRAIN_PREFIX}configs/<file>.py[:variant]' to train it here")


def plan(config: ml_collections.ConfigDict) -> list[Run]:
    """Every run of the protocol, in the order they execute (encoder-major).

    The untrained encoder runs both arms whatever ``config.arms`` says: its frozen arm is
    the zero of the normalisation, its fine-tuned arm (trained from scratch) the one.
    """
    return [Run(e, t, a, s, r) for e in encoder_order(config) for t in config.tasks.keys()
            for a in (ARMS if e == config.untrained else config.arms)
            for s in config.train_sets for r in range(config.replicas)]


def encoder_order(config: ml_collections.ConfigDict) -> list[str]:
    """Table rows: the untrained encoder, then the others (sorted)."""
    return [config.untrained, *sorted(n for n in config.encoders.keys() if n != config.untrained)]


def replica_seed(config: ml_collections.ConfigDict, replica: int) -> int:
    return int(config.seed) + replica


def train_set_label(config: ml_collections.ConfigDict, train_set: str) -> str:
    return "full training set" if train_set == "full" else f"{config.n_train} random examples"


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """``path/to/config.py[:variant]`` -> its ``get_config(variant)``."""
    path, _, variant = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} (from {spec!r}) not found; paths are relative to {os.getcwd()}")
    module_spec = importlib.util.spec_from_file_location(f"_protocol_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(variant)


def resolve_encoder(name: str, spec: str, workdir: pathlib.Path) -> pathlib.Path:
    """The run directory of encoder ``name``: given, or trained / saved untrained into ``workdir/encoders/name``."""
    from audiossl_jax import config_lib

    if not spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)):
        return pathlib.Path(spec)
    untrained = spec.startswith(UNTRAINED_PREFIX)
    config = load_config_file(spec.split(":", 1)[1])
    config_lib.validate(config)
    target = workdir / "encoders" / name
    if untrained:
        from audiossl_jax import save_untrained
        from audiossl_jax.train import checkpoint

        ckpt = checkpoint.Checkpointer(target, config)
        try:
            done = ckpt.latest_step() is not None
        finally:
            ckpt.close()
        if not done:
            logging.info("encoder %s: saving the untrained %s into %s", name, config.model.name, target)
            save_untrained.save_untrained(config, target)
    else:
        from audiossl_jax.train import trainer

        logging.info("encoder %s: training %s into %s (resumes)", name, config.model.name, target)
        trainer.train(config, target)
    return target


def task_data_config(config: ml_collections.ConfigDict, task: str) -> ml_collections.ConfigDict:
    """The data config of ``task``: ``pipeline.default_data_config()`` updated with ``config.tasks[task]``."""
    from audiossl_jax.data import pipeline

    data = pipeline.default_data_config()
    for key, value in config.tasks[task].items():
        if key not in data:
            raise ValueError(f"config.tasks.{task}.{key}: not a data config key; use one of {sorted(data.keys())}")
        data[key] = value
    return data


# ---------------------------------------------------------------------------- results file


def read_results(path: pathlib.Path) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` (score float, replica int); [] when the file does not exist."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path} has columns {reader.fieldnames}, not the protocol's {list(FIELDS)}; "
                             "move it away or use another --workdir")
        rows = list(reader)
    for row in rows:
        row["replica"], row["seed"], row["num_train"] = int(row["replica"]), int(row["seed"]), int(row["num_train"])
        row["score"], row["clip_score"], row["seconds"] = (float(row[k]) for k in ("score", "clip_score", "seconds"))
    return rows


def append_result(path: pathlib.Path, row: Mapping[str, Any]) -> None:
    """Appends one row (writing the header first when the file is new) and flushes it to disk."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in FIELDS})
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------- normalisation


def normalise(scores: np.ndarray, zero: np.ndarray, one: np.ndarray) -> np.ndarray:
    """Eq. (1) of Tagliasacchi et al. (2020): (s - zero) / (one - zero), elementwise; NaN where zero == one.

    zero: the untrained encoder frozen (linear head trained); one: encoder and head both
    trained from scratch on the task.
    """
    scores, zero, one = (np.asarray(a, np.float64) for a in (scores, zero, one))
    span = one - zero
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span != 0, (scores - zero) / np.where(span != 0, span, 1.0), np.nan)


def bootstrap_mean(values: np.ndarray, resamples: int, seed: int, interval: float) -> tuple[float, float, float]:
    """Mean of values [E, T] over tasks and its percentile interval from resampling tasks.

    values: normalised scores of E encoders on T tasks. Each resample draws T task
    indices with replacement (``np.random.default_rng(seed).integers``, shape
    [resamples, T], the same draws for every encoder); returns (mean [E], low [E],
    high [E]) with low/high the (1 -+ interval) / 2 percentiles of the resampled means.
    """
    values = np.atleast_2d(np.asarray(values, np.float64))
    idx = np.random.default_rng(seed).integers(0, values.shape[1], size=(resamples, values.shape[1]))
    means = values[:, idx].mean(axis=-1)  # [E, resamples]
    tail = 100 * (1 - interval) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=-1)
    return values.mean(axis=-1), low, high


def summarise(rows: Iterable[Mapping[str, Any]], config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """One section per (arm, training set) with all results: per encoder and task the
    replica scores (mean, std, count) and the normalised score; per encoder the average
    normalised score over tasks with its bootstrap interval.

    Both arms of a training set share the references of eq. (1): ``zero`` [T] = the untrained
    encoder's frozen arm, ``one`` [T] = its fine-tuned arm (trained from scratch). The
    average covers the tasks where normalisation is defined (both references scored, and
    differently); the others are listed in ``left_out`` with the reason, not folded in as
    NaN (a task where the references tie would otherwise blank every encoder's average).
    ``inverted`` lists the tasks where training from scratch scores below the untrained
    frozen encoder (the scale runs backwards there)."""
    encoders, tasks = encoder_order(config), list(config.tasks.keys())
    by_key: dict[tuple[str, str, str, str], list[float]] = {}
    clip_by_key: dict[tuple[str, str, str, str], list[float]] = {}
    metric: dict[str, str] = {}
    for row in rows:
        key = (row["encoder"], row["task"], row["arm"], row["train_set"])
        by_key.setdefault(key, []).append(row["score"])
        clip_by_key.setdefault(key, []).append(row.get("clip_score", float("nan")))
        metric[row["task"]] = row["metric"]

    def scores(encoder: str, task: str, arm: str, train_set: str) -> list[float]:
        return by_key.get((encoder, task, arm, train_set), [])

    def reference(arm: str, train_set: str) -> np.ndarray:
        return np.asarray([np.mean(v) if (v := scores(config.untrained, t, arm, train_set)) else np.nan
                           for t in tasks])

    sections = []
    for arm in config.arms:
        for train_set in config.train_sets:
            zero, one = reference("frozen", train_set), reference("finetuned", train_set)
            ref_complete = all(len(scores(config.untrained, t, a, train_set)) == config.replicas
                               for t in tasks for a in ARMS)
            defined = np.isfinite(normalise(zero, zero, one))
            left_out = {t: ("no score of a reference yet" if np.isnan([zero[j], one[j]]).any() else
                            f"{config.untrained} frozen and trained from scratch both score {zero[j]:.3f}")
                        for j, t in enumerate(tasks) if not defined[j]}
            inverted = [t for j, t in enumerate(tasks) if defined[j] and one[j] < zero[j]]
            got = {(e, t): scores(e, t, arm, train_set) for e in encoders for t in tasks}
            complete = ref_complete and all(len(got[e, t]) == config.replicas for e in encoders for t in tasks)
            mean = np.asarray([[np.mean(got[e, t]) if got[e, t] else np.nan for t in tasks] for e in encoders])
            std = np.asarray([[np.std(got[e, t]) if got[e, t] else np.nan for t in tasks] for e in encoders])
            count = np.asarray([[len(got[e, t]) for t in tasks] for e in encoders])
            clip = np.asarray([[np.mean(clip_by_key[e, t, arm, train_set]) if got[e, t] else np.nan for t in tasks]
                               for e in encoders])
            norm = normalise(mean, zero, one)
            if defined.any():
                avg, low, high = bootstrap_mean(norm[:, defined], int(config.bootstrap.resamples),
                                                int(config.bootstrap.seed), float(config.bootstrap.interval))
            else:
                avg = low = high = np.full(len(encoders), np.nan)
            sections.append(dict(arm=arm, train_set=train_set, label=train_set_label(config, train_set),
                                 complete=complete, encoders=encoders, tasks=tasks,
                                 metrics=[metric.get(t, "") for t in tasks], mean=mean, std=std, count=count,
                                 clip_mean=clip,
                                 zero=zero, one=one, normalised=norm, average=avg, low=low, high=high,
                                 left_out=left_out, inverted=inverted, untrained=config.untrained))
    return sections


# ---------------------------------------------------------------------------- table and figure


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def markdown_table(sections: list[dict[str, Any]], config: ml_collections.ConfigDict) -> str:
    """Table I: one table per (arm, training set); rows encoders, columns tasks + average."""
    lines = ["# Downstream evaluation (Tagliasacchi et al. 2020, Table I layout)", "",
             f"Cells: score on the task's test split, mean +- std over {config.replicas} "
             f"replica{'s' if config.replicas != 1 else ''}. "
             f"Average: normalised score (s - zero) / (one - zero) (eq. 1), zero = {config.untrained} frozen "
             f"(linear head only), one = {config.untrained} fine-tuned (encoder and head trained from scratch), "
             "per task and training set and the same for both arms, averaged over tasks "
             f"[{100 * config.bootstrap.interval:.0f}% interval from "
             f"{config.bootstrap.resamples} bootstrap resamples of the tasks]."]
    for s in sections:
        arm = "frozen encoder, linear probe" if s["arm"] == "frozen" else "fine-tuned encoder"
        status = "" if s["complete"] else " (incomplete: some runs are missing)"
        heads = [f"{t} ({m})" if m else t for t, m in zip(s["tasks"], s["metrics"])]
        lines += ["", f"## {arm}, {s['label']}{status}", "",
                  "| encoder | " + " | ".join(heads) + " | average (normalised) |",
                  "|---" * (len(heads) + 2) + "|"]
        for i, enc in enumerate(s["encoders"]):
            cells = [f"{_fmt(s['mean'][i, j])} +- {_fmt(s['std'][i, j])}" if s["count"][i, j] else "-"
                     for j in range(len(s["tasks"]))]
            avg = f"{_fmt(s['average'][i], 2)} [{_fmt(s['low'][i], 2)}, {_fmt(s['high'][i], 2)}]"
            lines.append(f"| {enc} | " + " | ".join(cells) + f" | {avg} |")
        if np.isfinite(s["clip_mean"]).any():
            lines += ["", "Clip-level accuracy (mean of the slice scores per clip), mean over replicas: " + "; ".join(
                f"{enc} " + ", ".join(_fmt(v) for v in s["clip_mean"][i]) for i, enc in enumerate(s["encoders"]))
                + "."]
        lines += ["", "References (zero / one): " + "; ".join(
            f"{t} {_fmt(z)} / {_fmt(o)}" for t, z, o in zip(s["tasks"], s["zero"], s["one"])) + "."]
        if s["left_out"]:
            why = "; ".join(f"{t} ({reason})" for t, reason in s["left_out"].items())
            lines += ["", f"Average over {len(s['tasks']) - len(s['left_out'])} of {len(s['tasks'])} tasks; "
                          f"left out, normalisation undefined: {why}."]
        if s["inverted"]:
            lines += ["", inverted_warning(s)]
    return "\n".join(lines) + "\n"


def inverted_warning(section: Mapping[str, Any]) -> str:
    """The warning, for table and figure alike, naming the tasks where eq. (1)'s scale runs backwards."""
    return (f"Warning: training from scratch scores below {section['untrained']} frozen on "
            f"{', '.join(section['inverted'])}; there a higher normalised score means a lower task score.")


def figure(sections: list[dict[str, Any]]) -> Any:
    """Fig. 2 as a matplotlib figure: per (arm, training set) a panel of normalised scores,
    tasks + average on x, one bar per encoder.

    A score that cannot be normalised (a reference missing or tied) gets no bar but the
    text "n/a" at its place, never a bar of height 0; the legend sits to the right of the
    panels, outside the bars; a panel with inverted tasks carries ``inverted_warning``
    under its title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(sections), 1, figsize=(max(6.0, 1.6 * (len(sections[0]["tasks"]) + 1)),
                                                        3.4 * len(sections)), squeeze=False)
    for ax, s in zip(axes[:, 0], sections):
        groups = s["tasks"] + ["average"]
        n = len(s["encoders"])
        width = 0.8 / n
        x = np.arange(len(groups))
        for i, enc in enumerate(s["encoders"]):
            heights = np.append(s["normalised"][i], s["average"][i])
            err = np.full((2, len(groups)), np.nan)
            err[:, -1] = [s["average"][i] - s["low"][i], s["high"][i] - s["average"][i]]
            at = x + (i - (n - 1) / 2) * width
            shown = np.isfinite(heights)
            ax.bar(at[shown], heights[shown], width, color=f"C{i}", yerr=np.nan_to_num(err[:, shown]), capsize=2)
            for position in at[~shown]:
                ax.text(position, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize="small",
                        color=f"C{i}", transform=ax.get_xaxis_transform())
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.axhline(1.0, color="grey", linewidth=0.6, linestyle="--")
        ax.set_xticks(x, groups, rotation=20, ha="right")
        ax.set_ylabel("normalised score")
        title = f"{s['arm']}, {s['label']}"
        if s["inverted"]:
            title += "\n" + textwrap.fill(inverted_warning(s), 90)
        ax.set_title(title, fontsize="medium")
        ax.legend(handles=[Patch(color=f"C{i}", label=enc) for i, enc in enumerate(s["encoders"])],
                  fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot(sections: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Writes ``figure(sections)`` to ``path`` (PNG), the legends included."""
    import matplotlib.pyplot as plt

    fig = figure(sections)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_reports(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> list[dict[str, Any]]:
    """Writes table.md, figure.png and summary.json from results.csv; returns the sections."""
    sections = summarise(read_results(workdir / CSV_FILE), config)
    (workdir / TABLE_FILE).write_text(markdown_table(sections, config))
    plot(sections, workdir / FIGURE_FILE)
    summary = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in sections]
    (workdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=True))
    return sections


# ---------------------------------------------------------------------------- runs


class Evaluator:
    """Runs protocol cells; caches encoder directories, embeddings and dataset metadata."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: pathlib.Path):
        self.config, self.workdir = config, workdir
        self._dirs: dict[str, pathlib.Path] = {}
        self._loaded: tuple[str, Any, Any] | None = None
        self._info: dict[tuple[str, str], Any] = {}
        self._steps: dict[str, int] = {}

    def encoder_dir(self, name: str) -> pathlib.Path:
        if name not in self._dirs:
            self._dirs[name] = resolve_encoder(name, self.config.encoders[name], self.workdir)
        return self._dirs[name]

    def info(self, task: str, split: str) -> Any:
        from audiossl_jax.data import registry

        if (task, split) not in self._info:
            self._info[task, split] = registry.get_dataset_info(task_data_config(self.config, task), split)
        return self._info[task, split]

    def num_classes(self, task: str) -> tuple[int, bool]:
        data = task_data_config(self.config, task)
        info = self.info(task, data.train_split)
        if info.num_classes < 2:
            raise ValueError(f"config.tasks.{task}: dataset {data.name!r} split {data.train_split!r} has "
                             f"{info.num_classes} classes; a downstream task needs labelled data "
                             "(set data.label_key to a labelled column)")
        return info.num_classes, info.multi_label

    def embeddings(self, encoder: str, task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Scene embeddings [N, D] of ``split`` and ``task``'s labels; the embeddings are cached in
        workdir/embeddings/<encoder>/step<step>/<audio fingerprint>/<split>.npz, shared by every task
        that reads the same audio (``embeddings.cached_scene_embeddings``: label columns of one folder)."""
        from audiossl_jax.evaluation import embeddings

        enc_dir = self.encoder_dir(encoder)
        if encoder not in self._steps:
            self._steps[encoder] = embeddings.latest_step(enc_dir)

        def load() -> tuple[Any, Any]:
            if self._loaded is None or self._loaded[0] != encoder:
                self._loaded = (encoder, *embeddings.load_encoder(enc_dir, self._steps[encoder]))
            return self._loaded[1], self._loaded[2]

        data = task_data_config(self.config, task)
        data.sample_rate = int(embeddings.load_config(enc_dir).frontend.sample_rate)
        return embeddings.cached_scene_embeddings(
            self.workdir / "embeddings" / encoder / f"step{self._steps[encoder]}", data, split, encoder=load,
            batch_size=int(self.config.embed_batch_size),
            progress=embeddings.ProgressLog(f"embedding {task}:{split} with {encoder}"))

    def run_data_config(self, run: Run) -> ml_collections.ConfigDict:
        """The task's data config with the run's training set: the ``subset`` arm trains on
        ``n_train`` examples drawn by the replica's seed (``data.train_size``, ``subset_seed``),
        the same for every encoder."""
        data = task_data_config(self.config, run.task)
        if run.train_set == "subset":
            data.train_size, data.subset_seed = int(self.config.n_train), replica_seed(self.config, run.replica)
        return data

    def frozen(self, run: Run) -> tuple[str, float, int]:
        from audiossl_jax.data import pipeline
        from audiossl_jax.evaluation import linear

        data = self.run_data_config(run)
        num_classes, multi_label = self.num_classes(run.task)
        x, y = self.embeddings(run.encoder, run.task, data.train_split)
        test = self.embeddings(run.encoder, run.task, data.eval_split)
        keep = pipeline.train_examples(data, len(y))
        if keep is not None:
            x, y = x[keep], y[keep]
        result = linear.linear_eval((x, y), test, num_classes=num_classes, multi_label=multi_label,
                                    val_fraction=float(self.config.linear.val_fraction),
                                    seed=replica_seed(self.config, run.replica))
        metric = "mAP" if multi_label else "accuracy"
        return metric, float(result[metric]), len(y)

    def classifier_config(self, run: Run) -> ml_collections.ConfigDict:
        """The fine-tuning config of ``run``'s encoder on its task, data and replica seed."""
        from audiossl_jax.evaluation import embeddings, finetune

        enc_dir = self.encoder_dir(run.encoder)
        num_classes, multi_label = self.num_classes(run.task)
        c = embeddings.local_config(finetune.finetune_config_from(
            embeddings.load_config(enc_dir), str(enc_dir), num_classes=num_classes, multi_label=multi_label))
        c.data = self.run_data_config(run)
        c.data.sample_rate = int(c.frontend.sample_rate)
        c.seed = replica_seed(self.config, run.replica)
        return c

    def num_train(self, c: ml_collections.ConfigDict, task: str) -> int:
        from audiossl_jax.data import subset

        num_examples = self.info(task, c.data.train_split).num_examples
        return subset.subset_size(num_examples, c.data.train_fraction, c.data.train_size) or num_examples

    def run_dir(self, run: Run) -> pathlib.Path:
        arm = "" if run.arm == "finetuned" else "frozen_"
        return self.workdir / f"{arm}finetune" / run.encoder / run.task / run.train_set / f"replica{run.replica}"

    def finetuned(self, run: Run) -> tuple[str, float, int]:
        from audiossl_jax.evaluation import finetune

        f = self.config.finetune
        c = self.classifier_config(run)
        c.data.class_balanced = bool(f.class_balanced)
        c.total_steps, c.batch_size = int(f.total_steps), int(f.batch_size)
        c.log_every_steps = max(1, min(int(f.log_every_steps), c.total_steps))
        c.checkpoint.every_steps, c.checkpoint.asynchronous = c.total_steps, False
        c.schedule.peak_learning_rate = float(f.peak_learning_rate)
        c.task.consistency, c.task.output_dropout = bool(f.consistency), float(f.output_dropout)
        result = finetune.run(c, self.run_dir(run))
        metric = "mAP" if c.task.multi_label else "accuracy"
        return metric, float(result[metric]), self.num_train(c, run.task)

    def sliced(self, run: Run) -> tuple[str, float, float, int]:
        """The paper's recipe: train on random slices (frozen: the linear layer only; fine-tuned:
        everything) with constant-rate Adam, then ``slices.evaluate_slices`` on the test split."""
        from audiossl_jax import config_lib
        from audiossl_jax.evaluation import slices
        from audiossl_jax.tasks.classification import ClassificationTask
        from audiossl_jax.train import sharding, trainer

        sl = self.config.slices
        c = self.classifier_config(run)
        if c.task.multi_label:
            raise ValueError(f"config.tasks.{run.task}: a multi-label task; the slice recipe scores single-label "
                             "accuracy (use config.recipe='clips')")
        clip_seconds = float(c.data.crop_seconds)
        c.data.crop_seconds = float(sl.seconds)  # the pipeline's random crop is the random slice
        c.task.update(dict(freeze_encoder=run.arm == "frozen", jitter_samples=0, time_mask_max_fraction=0.0,
                           mixup=False, consistency=False, output_dropout=0.0))
        c.optimizer.update(dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip_norm=0.0))  # Adam defaults
        c.schedule = ml_collections.ConfigDict(dict(name="warmup_linear_decay", warmup_steps=0, final_scale=1.0,
                                                    peak_learning_rate=float(sl.learning_rate)))
        c.total_steps, c.batch_size = int(sl.total_steps), int(sl.batch_size)
        c.log_every_steps = max(1, min(int(sl.log_every_steps), c.total_steps))
        c.checkpoint.every_steps, c.checkpoint.asynchronous = c.total_steps, False
        config_lib.validate(c)
        run_dir = self.run_dir(run)
        state = trainer.train(c, run_dir)
        eval_data = ml_collections.ConfigDict(c.data.to_dict())
        eval_data.crop_seconds = clip_seconds  # whole clips (up to the task's crop), sliced at random
        result = slices.evaluate_slices(
            ClassificationTask(c), {"params": state.params, **state.model_state}, eval_data, c.data.eval_split,
            slice_seconds=float(sl.seconds), per_clip=int(sl.per_clip), seed=replica_seed(self.config, run.replica),
            batch_size=c.batch_size, mesh=sharding.make_mesh(c))
        (run_dir / f"eval_slices_{c.data.eval_split.replace('/', '_')}.json").write_text(json.dumps(result, indent=2))
        return "accuracy", result["accuracy"], result["clip_accuracy"], self.num_train(c, run.task)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, max_runs: int | None = None
        ) -> list[dict[str, Any]]:
    """Runs the missing cells of the protocol (at most ``max_runs`` of them), then writes the reports.

    Returns the sections of ``summarise``.
    """
    validate(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "protocol_config.json").write_text(config.to_json_best_effort(indent=2))
    csv_path = workdir / CSV_FILE
    done = {(r["encoder"], r["task"], r["arm"], r["train_set"], r["replica"]) for r in read_results(csv_path)}
    runs = plan(config)
    todo = [r for r in runs if r.key() not in done]
    if max_runs is not None:
        todo = todo[:max_runs]
    finished = sum(r.key() in done for r in runs)
    logging.info("protocol: %d runs in all, %d already in %s, running %d now", len(runs), finished, csv_path,
                 len(todo))
    evaluator = Evaluator(config, workdir)
    start = time.perf_counter()
    for i, r in enumerate(todo, 1):
        t0 = time.perf_counter()
        if config.recipe == "slices":
            metric, score, clip_score, num_train = evaluator.sliced(r)
        else:
            metric, score, num_train = (evaluator.frozen if r.arm == "frozen" else evaluator.finetuned)(r)
            clip_score = float("nan")  # the clip recipe scores clips only: ``score``
        seconds = time.perf_counter() - t0
        append_result(csv_path, dict(encoder=r.encoder, task=r.task, arm=r.arm, train_set=r.train_set,
                                     replica=r.replica, seed=replica_seed(config, r.replica), num_train=num_train,
                                     metric=metric, score=f"{score:.6f}", clip_score=f"{clip_score:.6f}",
                                     seconds=f"{seconds:.2f}"))
        eta = (time.perf_counter() - start) / i * (len(todo) - i)
        logging.info("[%d/%d] %s | %s | %s | %s | replica %d: %s %.4f (clip %.4f) on %d training examples "
                     "(%.1f s, ETA %.0f s)", i, len(todo), r.encoder, r.task, r.arm, r.train_set, r.replica, metric,
                     score, clip_score, num_train, seconds, eta)
    sections = write_reports(config, workdir)
    logging.info("wrote %s, %s, %s and %s in %s", CSV_FILE, TABLE_FILE, FIGURE_FILE, SUMMARY_FILE, workdir)
    return sections


def main(argv: list[str]) -> None:
    """Command entry point; shows this package's INFO lines only (``logs.show_own_info``)."""
    from absl import flags

    from audiossl_jax.data.registry import DatasetError

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {' '.join(argv[1:])}")
    logs.show_own_info()
    try:
        run(flags.FLAGS.config, flags.FLAGS.workdir, max_runs=flags.FLAGS.max_runs)
    except (DatasetError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print((pathlib.Path(flags.FLAGS.workdir) / TABLE_FILE).read_text())


if __name__ == "__main__":
    from absl import app, flags

    from audiossl_jax import main as cli  # noqa: F401  (defines --config and --workdir)

    flags.DEFINE_integer("max_runs", None, "Stop after this many new runs (the rest run on the next call).")
    app.run(main)

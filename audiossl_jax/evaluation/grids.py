"""Grids of runs for the conformer paper's experiments (Srivastava et al., 2022).

    python -m audiossl_jax.main --config=configs/grid_<name>.py[:variant] --workdir=W

A grid is a list of named points (``Point``); each point is a set of config overrides
run as its own resumable run in ``W/<point name>/``. A finished point records its
metrics in ``W/<point name>/metrics.json`` and is skipped on a rerun (``run_points``).
From the metrics a grid writes ``W/table.md``, ``W/table.csv``, ``W/figure.png`` and
``W/summary.json``. ``config.grid`` names the grid:

* ``sweep`` (Sec. 4.3: "We sweep different combinations of the parameters to find the
  one that optimizes validation performance"): fine-tuning over every combination of
  peak learning rate, steps, batch size and output dropout; the point with the best
  validation metric is selected (ties: the first in grid order) and only its test metric
  is computed and reported.
* ``label_fractions`` (Table 1): pre-trained vs. from-scratch fine-tuning on each
  fraction of the labelled training set; mAP against the number of labelled clips.
* ``cv`` (ESC-50 "comes divided into 5 folds for cross validation"): train on all folds
  but K, test on fold K, for every K; the mean and the per-fold values.
* ``ablation`` (Fig. 2): pre-training variants (amount of pre-training data, conformer
  blocks, attention heads), each pre-trained and then fine-tuned on every downstream task.

The grid functions take the function that runs one fine-tuning (``Runner``) and, for the
ablation, one pre-training, so tests inject fast fakes; by default they are
``finetune_run`` and ``trainer.train``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import math
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from audiossl_jax import config_lib
from audiossl_jax.config_lib import require
from audiossl_jax.data import registry, subset
from audiossl_jax.evaluation import finetune, protocol
from audiossl_jax.tasks.classification import ClassificationTask
from audiossl_jax.train import sharding, trainer

GRIDS = ("sweep", "label_fractions", "cv", "ablation")
METRICS_FILE, TEST_METRICS_FILE = "metrics.json", "test_metrics.json"
TABLE_MD, TABLE_CSV, FIGURE_FILE, SUMMARY_FILE = "table.md", "table.csv", "figure.png", "summary.json"
ARMS = ("pretrained", "scratch")
# Fig. 2's three panels: the ablation key, its config key in the pre-training run, the x-axis label.
ABLATION_AXES = (
    ("pretrain_fraction", "data.train_fraction", "fraction of the pre-training set"),
    ("num_blocks", "model.num_blocks", "conformer blocks"),
    ("num_heads", "model.num_heads", "attention heads"),
)
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")

# (config of one fine-tuning, its run directory, splits to score) -> metrics
# {"<split>/<metric>": value, ..., "num_train": labelled training clips}.
Runner = Callable[[ml_collections.ConfigDict, pathlib.Path, Sequence[str]], dict[str, float]]
Pretrainer = Callable[[ml_collections.ConfigDict, pathlib.Path], Any]


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a grid: its directory name, the config it starts from and the overrides.

    ``overrides`` maps dotted config keys (``schedule.peak_learning_rate``) to values;
    ``base`` names the grid config's key holding the starting config.
    """

    name: str
    overrides: Mapping[str, Any]
    base: str = "base"


# ---------------------------------------------------------------------------- the generic core


def run_points(
    points: Sequence[Point],
    workdir: pathlib.Path,
    run_point: Callable[[Point, pathlib.Path], Mapping[str, float]],
    *,
    metrics_file: str = METRICS_FILE,
) -> dict[str, dict[str, float]]:
    """Runs every point not yet finished, in order; returns {point name: metrics} for all of them.

    A point is finished when ``workdir/<name>/<metrics_file>`` exists: its metrics are read
    back and ``run_point`` is not called (even if the grid config changed since: use a new
    workdir, or delete that file to rerun the point). Otherwise ``run_point(point, workdir/<name>)``
    runs (resuming from whatever the directory holds) and its metrics are written
    atomically (temporary file, then rename), so an interrupted grid resumes where it stopped.
    """
    names = [p.name for p in points]
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"grid point name {name!r}: use letters, digits and _ . + - only (it names a directory)")
    if len(set(names)) != len(names):
        raise ValueError(f"grid points repeat a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    out: dict[str, dict[str, float]] = {}
    todo = [p for p in points if not (workdir / p.name / metrics_file).is_file()]
    logging.info(
        "grid %s: %d points, %d finished, running %d", workdir, len(points), len(points) - len(todo), len(todo)
    )
    for point in points:
        path = workdir / point.name / metrics_file
        if not path.is_file():
            logging.info("grid point %s: running %s", point.name, dict(point.overrides))
            metrics = {k: float(v) for k, v in run_point(point, workdir / point.name).items()}
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(metrics, indent=2, allow_nan=True))
            tmp.replace(path)
            logging.info("grid point %s: %s", point.name, metrics)
        out[point.name] = json.loads(path.read_text())
    return out


def override(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A copy of ``config`` with each dotted key set; an unknown key raises ValueError naming it."""
    c = ml_collections.ConfigDict(config.to_dict())
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = c
        for i, part in enumerate(parents):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise ValueError(f"grid override {key!r}: config has no section {'.'.join(parents[: i + 1])!r}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"grid override {key!r}: config has no key {leaf!r} there; use one of {sorted(node)}")
        node[leaf] = value
    return c


def select(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the first in grid order; NaN is never chosen."""
    values = np.asarray(scores, np.float64)
    if values.size == 0 or np.isnan(values).all():
        raise ValueError(f"no finite validation score to select on: {list(scores)}")
    return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))


def write_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], workdir: pathlib.Path, notes: Iterable[str] = ()
) -> str:
    """Writes ``table.csv`` (the values) and ``table.md`` (the same rows, then ``notes``); returns the Markdown.

    Markdown prints floats with 4 decimals (below 0.01: 2 significant digits), None as an empty cell.
    """
    with (workdir / TABLE_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in columns) + " |" for row in rows]
    text = "\n".join(lines + [""] + [n + "\n" for n in notes]) + "\n"
    (workdir / TABLE_MD).write_text(text)
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # scores to 4 decimals; small settings (learning rates) to 2 digits
        return "n/a" if math.isnan(value) else f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
    return str(value)


def _figure(panels: int, width: float = 5.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, 3.6), squeeze=False)
    return fig, axes[0]


def _save(fig: Any, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_summary(workdir: pathlib.Path, summary: Mapping[str, Any]) -> None:
    (workdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=True))


# ---------------------------------------------------------------------------- one fine-tuning


def finetune_run(config: ml_collections.ConfigDict, workdir: pathlib.Path, splits: Sequence[str]) -> dict[str, float]:
    """Fine-tunes ``config`` (validated with the grid: ``validate``) in ``workdir`` (resuming; a
    finished run is only restored) and scores every example of each split with ``finetune.evaluate``.

    Returns {"<split>/<metric>": value} for every metric of every split, and
    "num_train": the labelled training clips (``data.train_fraction``/``train_size`` applied).
    """

    task, mesh = ClassificationTask(config), sharding.make_mesh(config.mesh.data, config.mesh.model)
    state = trainer.train(config, workdir, task=task)
    variables = {"params": state.params, **state.model_state}
    out: dict[str, float] = {}
    for split in splits:
        result = finetune.evaluate(task, variables, config.data, split, batch_size=config.batch_size, mesh=mesh)
        out.update({f"{split}/{k}": float(v) for k, v in result.items()})
    n = registry.get_dataset_info(config.data, config.data.train_split).num_examples or 0
    d = config.data
    out["num_train"] = float(subset.subset_size(n, d.train_fraction, d.train_size) or n)
    return out


def _point_config(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
    return override(config[point.base], point.overrides)


def _metric(config: ml_collections.ConfigDict, split: str) -> str:
    return f"{split}/{config.metric}"


# ---------------------------------------------------------------------------- sweep (Sec. 4.3)


def sweep_points(config: ml_collections.ConfigDict) -> list[Point]:
    """Every combination of ``config.sweep``'s peak learning rates, steps, batch sizes and
    output dropouts, in that nesting order (the grid order that breaks ties)."""
    s = config.sweep
    points = []
    for lr, steps, batch, dropout in itertools.product(
        s.peak_learning_rates, s.total_steps, s.batch_sizes, s.output_dropouts
    ):
        points.append(
            Point(
                f"lr{lr:g}_steps{steps}_bs{batch}_drop{dropout:g}",
                {
                    "schedule.peak_learning_rate": float(lr),
                    "total_steps": int(steps),
                    "batch_size": int(batch),
                    "task.output_dropout": float(dropout),
                },
            )
        )
    return points


def run_sweep(
    config: ml_collections.ConfigDict, workdir: pathlib.Path, runner: Runner = finetune_run
) -> dict[str, Any]:
    """Fine-tunes every point scoring ``sweep.val_split``; selects the best validation
    metric; scores ``data.eval_split`` for the selected point only (``test_metrics.json``)."""
    points = sweep_points(config)
    val_split, test_split = config.sweep.val_split, config[points[0].base].data.eval_split
    results = run_points(points, workdir, lambda p, d: runner(_point_config(config, p), d, (val_split,)))
    key = _metric(config, val_split)
    missing = [name for name, m in results.items() if key not in m]
    if missing:
        raise ValueError(
            f"config.metric={config.metric!r}: points {missing} have no {key!r}; their metrics are "
            f"{sorted(results[missing[0]])}"
        )
    best = points[select([results[p.name][key] for p in points])]
    test = run_points(
        [best], workdir, lambda p, d: runner(_point_config(config, p), d, (test_split,)), metrics_file=TEST_METRICS_FILE
    )[best.name][_metric(config, test_split)]
    rows = [
        dict(
            point=p.name,
            peak_learning_rate=p.overrides["schedule.peak_learning_rate"],
            total_steps=p.overrides["total_steps"],
            batch_size=p.overrides["batch_size"],
            output_dropout=p.overrides["task.output_dropout"],
            validation=results[p.name][key],
            test=test if p is best else None,
            selected="yes" if p is best else "",
        )
        for p in points
    ]
    note = (
        f"Selected by validation {config.metric} on {val_split!r} (ties: the first in grid order): {best.name}, "
        f"validation {results[best.name][key]:.4f}; test {config.metric} on {test_split!r}: {test:.4f}. Only the "
        "selected point is scored on the test split."
    )
    write_table(rows, list(rows[0]), workdir, [note])
    fig, (ax,) = _figure(1, width=max(5.0, 0.5 * len(points)))
    ax.bar(
        range(len(points)),
        [r["validation"] for r in rows],
        color=["tab:red" if p is best else "tab:blue" for p in points],
    )
    ax.set_xticks(range(len(points)), [p.name for p in points], rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel(f"validation {config.metric}")
    ax.set_title(f"sweep: selected {best.name} (red), test {config.metric} {test:.4f}")
    _save(fig, workdir / FIGURE_FILE)
    summary = dict(
        grid="sweep",
        metric=config.metric,
        val_split=val_split,
        test_split=test_split,
        selected=best.name,
        validation=results[best.name][key],
        test=test,
        points={p.name: dict(overrides=dict(p.overrides), validation=results[p.name][key]) for p in points},
    )
    _write_summary(workdir, summary)
    return summary


# ---------------------------------------------------------------------------- Table 1


def label_fraction_replicas(config: ml_collections.ConfigDict) -> int:
    """``label_fractions.replicas``: runs per (fraction, arm), each its own seed (default 1)."""
    return int(config.label_fractions.get("replicas", 1))


def label_fraction_name(arm: str, percent: float, replica: int, replicas: int) -> str:
    """The point name of one (arm, fraction, replica): ``<arm>_<percent>pct``, ``_r<k>`` appended
    when there are several replicas (one replica keeps the single-run name)."""
    return f"{arm}_{percent:g}pct" + (f"_r{replica}" if replicas > 1 else "")


def label_fraction_points(config: ml_collections.ConfigDict) -> list[Point]:
    """Per fraction (``label_fractions.percents``), arm (``label_fractions.arms``) and replica
    (``label_fractions.replicas``, default 1) one point: ``<arm>_<percent>pct`` (``_r<k>`` appended
    when there are several replicas, replica k seeded ``base.seed + k``). The fraction
    ``balanced_percent`` fine-tunes on the grid config's ``balanced`` run config (the Balanced set
    itself; 0: no such fraction); the others on ``data.train_fraction`` of ``base``'s training
    split. Arm 'scratch' clears ``task.pretrained_workdir``."""
    lf = config.label_fractions
    replicas = label_fraction_replicas(config)
    points = []
    for percent in lf.percents:
        balanced = percent == lf.balanced_percent
        base = "balanced" if balanced else "base"
        for arm in lf.arms:
            overrides: dict[str, Any] = {} if balanced else {"data.train_fraction": percent / 100}
            if arm == "scratch":
                overrides["task.pretrained_workdir"] = None
            for r in range(replicas):
                seeded = {**overrides, "seed": int(config[base].seed) + r} if replicas > 1 else overrides
                points.append(Point(label_fraction_name(arm, percent, r, replicas), seeded, base))
    return points


def run_label_fractions(
    config: ml_collections.ConfigDict, workdir: pathlib.Path, runner: Runner = finetune_run
) -> dict[str, Any]:
    """Table 1: test metric per (fraction, arm), the mean over replicas (and its std and the
    replicas' values when there are several); plot of the metric against the labelled clips (log x)."""
    config = ml_collections.ConfigDict(config.to_dict())
    lf = config.label_fractions
    if "pretrained" in lf.arms:
        pretrained = str(_pretrained_dir(config, workdir))
        for key in ("base", "balanced"):
            if key in config:
                config[key].task.pretrained_workdir = pretrained
    points = label_fraction_points(config)
    results = run_points(
        points, workdir, lambda p, d: runner(_point_config(config, p), d, (config[p.base].data.eval_split,))
    )
    key = _metric(config, config.base.data.eval_split)
    replicas = label_fraction_replicas(config)
    rows = []
    for label, percent in zip(lf.labels, lf.percents):
        row: dict[str, Any] = dict(column=label, percent=percent)
        for arm in lf.arms:
            metrics = [results[label_fraction_name(arm, percent, r, replicas)] for r in range(replicas)]
            scores = [m[key] for m in metrics]
            row["labelled_clips"] = int(metrics[0]["num_train"])
            row[arm] = float(np.mean(scores))
            if replicas > 1:
                row[f"{arm}_std"], row[f"{arm}_replicas"] = float(np.std(scores)), scores
        rows.append(row)
    columns = ["column", "percent", "labelled_clips"]
    for arm in lf.arms:
        columns += [arm, f"{arm}_std"] if replicas > 1 else [arm]
    write_table(
        rows,
        columns,
        workdir,
        [
            f"Test {config.metric} ({config.base.data.eval_split!r}) of fine-tuning with and without "
            "pre-training on each amount of labelled data (Srivastava et al., 2022, Table 1)"
            + (f"; mean and std over {replicas} replicas (seeds base.seed + k)." if replicas > 1 else ".")
        ],
    )
    fig, (ax,) = _figure(1)
    for arm in lf.arms:
        ax.errorbar(
            [r["labelled_clips"] for r in rows],
            [r[arm] for r in rows],
            yerr=[r.get(f"{arm}_std", 0.0) for r in rows],
            marker="o",
            capsize=3,
            label="pre-train + fine-tune" if arm == "pretrained" else "from scratch",
        )
    ax.set_xscale("log")
    clips = [r["labelled_clips"] for r in rows]
    ax.set_xticks(clips, [str(c) for c in clips])
    ax.minorticks_off()
    ax.set_xlabel("labelled training clips")
    ax.set_ylabel(f"test {config.metric}")
    ax.legend()
    _save(fig, workdir / FIGURE_FILE)
    summary = dict(grid="label_fractions", metric=config.metric, replicas=replicas, rows=rows)
    _write_summary(workdir, summary)
    return summary


def _pretrained_dir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> pathlib.Path:
    """``label_fractions.pretrained``: a run directory, or ``train:<config.py[:variant]>``
    pre-trained here into ``workdir/encoders/pretrained`` (resuming; ``protocol.resolve_encoder``)."""

    spec = config.label_fractions.pretrained
    if not spec:
        raise ValueError(
            "config.label_fractions.pretrained is empty: give a pre-training run directory or "
            "'train:configs/pretrain_cfL.py' (or drop 'pretrained' from config.label_fractions.arms)"
        )
    return protocol.resolve_encoder("pretrained", spec, workdir)


# ---------------------------------------------------------------------------- cross-validation


def cv_points(config: ml_collections.ConfigDict) -> list[Point]:
    """``fold<K>`` for K in ``cv.folds``: train on ``cv.train_splits[i]``, test on ``cv.test_splits[i]``."""
    cv = config.cv
    return [
        Point(f"fold{k}", {"data.train_split": train, "data.eval_split": test})
        for k, train, test in zip(cv.folds, cv.train_splits, cv.test_splits)
    ]


def run_cv(config: ml_collections.ConfigDict, workdir: pathlib.Path, runner: Runner = finetune_run) -> dict[str, Any]:
    """Fine-tunes once per fold; reports the per-fold test metric and their mean."""
    points = cv_points(config)
    results = run_points(
        points, workdir, lambda p, d: runner(_point_config(config, p), d, (p.overrides["data.eval_split"],))
    )
    values = [results[p.name][_metric(config, p.overrides["data.eval_split"])] for p in points]
    mean, std = float(np.mean(values)), float(np.std(values))
    rows = [
        dict(
            fold=str(k), train_split=p.overrides["data.train_split"], test_split=p.overrides["data.eval_split"], score=v
        )
        for k, p, v in zip(config.cv.folds, points, values)
    ]
    rows.append(dict(fold="mean", train_split="", test_split="", score=mean))
    write_table(
        rows,
        ["fold", "train_split", "test_split", "score"],
        workdir,
        [
            f"{len(values)}-fold cross-validation, test {config.metric}: mean {mean:.4f} (std {std:.4f}) over "
            + ", ".join(f"{v:.4f}" for v in values)
            + "."
        ],
    )
    fig, (ax,) = _figure(1)
    ax.bar([str(k) for k in config.cv.folds], values)
    ax.axhline(mean, color="black", linestyle="--", label=f"mean {mean:.4f}")
    ax.set_xlabel("test fold")
    ax.set_ylabel(f"test {config.metric}")
    ax.legend()
    _save(fig, workdir / FIGURE_FILE)
    summary = dict(grid="cv", metric=config.metric, folds=list(config.cv.folds), values=values, mean=mean, std=std)
    _write_summary(workdir, summary)
    return summary


# ---------------------------------------------------------------------------- Fig. 2 ablations


def ablation_points(config: ml_collections.ConfigDict) -> list[Point]:
    """The baseline, then each value of each axis of ``config.ablation`` with the other two at
    the baseline (Fig. 2: one factor at a time); a point shared by several axes runs once."""
    a = config.ablation
    points: dict[str, Point] = {}
    for axis, key, _ in ((None, None, None), *ABLATION_AXES):
        for value in [None] if axis is None else a[axis]:
            setting = {k: a.baseline[name] for name, k, _ in ABLATION_AXES}
            if axis is not None:
                setting[key] = value
            name = (
                f"data{setting['data.train_fraction']:g}_blocks{setting['model.num_blocks']}"
                f"_heads{setting['model.num_heads']}"
            )
            points.setdefault(name, Point(name, setting, "pretrain"))
    return list(points.values())


def run_ablation(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    runner: Runner = finetune_run,
    pretrainer: Pretrainer = trainer.train,
) -> dict[str, Any]:
    """Pre-trains each point (``<point>/pretrain``), then fine-tunes it on every config of
    ``config.downstream`` (``<point>/<task>``, with the point's model keys and its
    checkpoint); metrics ``<task>/<split>/<metric>``."""
    tasks = list(config.downstream.keys())

    def run_point(point: Point, directory: pathlib.Path) -> dict[str, float]:
        pretrainer(_point_config(config, point), directory / "pretrain")
        model = {k: v for k, v in point.overrides.items() if k.startswith("model.")}
        model["task.pretrained_workdir"] = str(directory / "pretrain")
        downstream = [Point(t, model, t) for t in tasks]
        got = run_points(
            downstream,
            directory,
            lambda p, d: runner(
                override(config.downstream[p.base], p.overrides), d, (config.downstream[p.base].data.eval_split,)
            ),
        )
        return {f"{t}/{k}": v for t in tasks for k, v in got[t].items()}

    points = ablation_points(config)
    results = run_points(points, workdir, run_point)
    score = {
        (p.name, t): results[p.name][f"{t}/{_metric(config, config.downstream[t].data.eval_split)}"]
        for p in points
        for t in tasks
    }
    rows = [
        dict(
            point=p.name,
            pretrain_fraction=p.overrides["data.train_fraction"],
            num_blocks=p.overrides["model.num_blocks"],
            num_heads=p.overrides["model.num_heads"],
            **{t: score[p.name, t] for t in tasks},
        )
        for p in points
    ]
    write_table(
        rows,
        list(rows[0]),
        workdir,
        [
            f"Test {config.metric} after pre-training with each setting and fine-tuning on {', '.join(tasks)} "
            "(Srivastava et al., 2022, Fig. 2: one factor varied at a time, the others at the baseline "
            f"{dict(config.ablation.baseline)})."
        ],
    )
    fig, axes = _figure(len(ABLATION_AXES))
    panels = {}
    for i, (ax, (axis, key, label)) in enumerate(zip(axes, ABLATION_AXES)):
        base = {k: config.ablation.baseline[n] for n, k, _ in ABLATION_AXES if k != key}
        on_axis = sorted(
            (p for p in points if all(p.overrides[k] == v for k, v in base.items())), key=lambda p: p.overrides[key]
        )
        xs = [p.overrides[key] for p in on_axis]
        panels[axis] = {t: dict(x=xs, y=[score[p.name, t] for p in on_axis]) for t in tasks}
        for t in tasks:
            ax.plot(xs, panels[axis][t]["y"], marker="o", label=t)
        ax.set_xticks(xs)
        ax.set_xlabel(label)
        ax.set_ylabel(f"test {config.metric}")
        ax.set_title(f"({'abc'[i]}) {label}")
        ax.legend()
    _save(fig, workdir / FIGURE_FILE)
    summary = dict(grid="ablation", metric=config.metric, rows=rows, panels=panels)
    _write_summary(workdir, summary)
    return summary


# ---------------------------------------------------------------------------- entry point

RUNS = {"sweep": run_sweep, "label_fractions": run_label_fractions, "cv": run_cv, "ablation": run_ablation}
POINTS = {"sweep": sweep_points, "label_fractions": label_fraction_points, "cv": cv_points, "ablation": ablation_points}


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the grid's keys and validates every point's config before anything runs."""

    require(config.grid in GRIDS, "grid", config.grid, f"use one of {GRIDS}.")
    require(
        isinstance(config.metric, str) and bool(config.metric),
        "metric",
        config.metric,
        "name the metric to report, a key of the fine-tuning's results (mAP, lwlrap, mauc, accuracy).",
    )
    if config.grid == "sweep":
        for key in ("peak_learning_rates", "total_steps", "batch_sizes", "output_dropouts"):
            require(len(config.sweep[key]) >= 1, f"sweep.{key}", config.sweep[key], "give at least one value.")
        require(
            bool(config.sweep.val_split),
            "sweep.val_split",
            config.sweep.val_split,
            "name the validation split (or a hold-out of the training split: '<train>@holdout:P:SEED').",
        )
    elif config.grid == "label_fractions":
        lf = config.label_fractions
        require(
            len(lf.labels) == len(lf.percents),
            "label_fractions.labels",
            lf.labels,
            f"give one column label per percent {tuple(lf.percents)}.",
        )
        require(
            len(lf.arms) >= 1 and set(lf.arms) <= set(ARMS), "label_fractions.arms", lf.arms, f"use a subset of {ARMS}."
        )
        require(
            all(0 < p <= 100 for p in lf.percents), "label_fractions.percents", lf.percents, "must lie in (0, 100]."
        )
        require(label_fraction_replicas(config) >= 1, "label_fractions.replicas", lf.get("replicas"), "must be >= 1.")
        require(
            lf.balanced_percent not in lf.percents or "balanced" in config,
            "label_fractions.balanced_percent",
            lf.balanced_percent,
            "names a fraction fine-tuned on config.balanced, which is missing; set it to 0.",
        )
    elif config.grid == "cv":
        cv = config.cv
        require(len(cv.folds) >= 2, "cv.folds", cv.folds, "give at least two folds.")
        for key in ("train_splits", "test_splits"):
            require(len(cv[key]) == len(cv.folds), f"cv.{key}", cv[key], f"give one split per fold {tuple(cv.folds)}.")
    for point in POINTS[config.grid](config):
        config_lib.validate(_point_config(config, point))
        if config.grid == "ablation":
            model = {k: v for k, v in point.overrides.items() if k.startswith("model.")}
            for task in config.downstream.keys():
                config_lib.validate(override(config.downstream[task], model))


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
    """Runs the grid ``config.grid`` into ``workdir`` (resuming) and writes its reports."""
    validate(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "grid_config.json").write_text(config.to_json_best_effort(indent=2))
    summary = RUNS[config.grid](config, workdir)
    logging.info("grid %s done: %s", config.grid, (workdir / TABLE_MD).read_text())
    return summary

"""The protocol's report (Tagliasacchi et al. 2020): results file, eq. (1), bootstrap, Table I, Fig. 2.

Pure NumPy and matplotlib: importing this module loads neither JAX nor TensorFlow, so
the table and figure of a finished (or interrupted) protocol can be rebuilt from its
``results.csv`` on any machine. ``evaluation.protocol`` runs the cells and calls
``append_result`` after each, then ``write_reports``.

Normalised score of encoder e on task t (the paper's eq. 1), the same references for both
arms: (s_e - s_zero) / (s_one - s_zero), with s_zero the untrained encoder's frozen arm
and s_one its fine-tuned arm (trained from scratch), per task and training set, s the
mean over replicas. Each encoder is normalised by its own untrained reference
(``config.untrained_for[encoder]``, else ``config.untrained``), one of the same slicing and
architecture. With ``config.scale='raw'`` the table averages the raw scores instead and
needs no reference. The average over tasks has a percentile interval from
``bootstrap.resamples`` resamples of the tasks with replacement (seeded).

The protocol config keys read here: ``encoders`` (names), ``untrained``, ``untrained_for``,
``scale``, ``tasks`` (names), ``arms``, ``train_sets``, ``replicas``, ``n_train`` and
``bootstrap`` (``resamples``, ``seed``, ``interval``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections
import numpy as np

ARMS = ("frozen", "finetuned")
TRAIN_SETS = ("full", "subset")
FIELDS = (
    "encoder",
    "task",
    "arm",
    "train_set",
    "replica",
    "seed",
    "num_train",
    "metric",
    "score",
    "clip_score",
    "seconds",
)
CSV_FILE, TABLE_FILE, FIGURE_FILE, SUMMARY_FILE = "results.csv", "table.md", "figure.png", "summary.json"
# config.scale: eq. (1)'s normalised score (needs the untrained references) or the raw score.
SCALES = ("normalised", "raw")


def is_raw(config: ml_collections.ConfigDict) -> bool:
    return config.get("scale", "normalised") == "raw"


def untrained_for(config: ml_collections.ConfigDict) -> dict[str, str]:
    """``config.untrained_for``: encoder -> the untrained encoder that normalises it (when not ``config.untrained``)."""
    return {encoder: str(reference) for encoder, reference in (config.get("untrained_for", None) or {}).items()}


def references(config: ml_collections.ConfigDict) -> list[str]:
    """The untrained encoders whose two arms are eq. (1)'s references: ``config.untrained``, then the
    others named in ``config.untrained_for`` (sorted); none on the raw scale."""
    if is_raw(config):
        return []
    return [config.untrained, *sorted(set(untrained_for(config).values()) - {config.untrained})]


def reference_of(config: ml_collections.ConfigDict, encoder: str) -> str:
    """The untrained encoder that normalises ``encoder`` (a reference normalises itself)."""
    if encoder in references(config):
        return encoder
    return untrained_for(config).get(encoder, config.untrained)


def encoder_order(config: ml_collections.ConfigDict) -> list[str]:
    """Table rows: the untrained references (raw scale: ``config.untrained``, when named), then the others (sorted)."""
    first = references(config) or [u for u in [config.get("untrained", None)] if u in config.encoders]
    return [*first, *sorted(n for n in config.encoders.keys() if n not in first)]


def train_set_label(config: ml_collections.ConfigDict, train_set: str) -> str:
    return "full training set" if train_set == "full" else f"{config.n_train} random examples"


# ---------------------------------------------------------------------------- results file


def read_results(path: pathlib.Path) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` (score float, replica int); [] when the file does not exist."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, not the protocol's {list(FIELDS)}; "
                "move it away or use another --workdir"
            )
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
    (``values``: the normalised scores, or the raw ones when ``config.scale='raw'``) over
    tasks with its bootstrap interval.

    Both arms of a training set share the references of eq. (1): ``zero`` [E, T] = the frozen
    arm of each row's untrained reference (``reference_of``), ``one`` [E, T] = its fine-tuned
    arm (trained from scratch). A row's average covers the tasks where its reference defines
    the normalisation (both arms scored, and differently); the others are listed in
    ``left_out`` (reference -> task -> reason), not folded in as NaN (a task where the
    references tie would otherwise blank every average). ``inverted`` (reference -> tasks)
    names the tasks where training from scratch scores below the untrained frozen encoder
    (the scale runs backwards). On the raw scale no reference is read: ``zero``, ``one`` and
    ``normalised`` are NaN, ``left_out`` and ``inverted`` empty."""
    encoders, tasks, refs, raw = encoder_order(config), list(config.tasks.keys()), references(config), is_raw(config)
    row_refs = [] if raw else [reference_of(config, e) for e in encoders]
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

    def reference(encoder: str, arm: str, train_set: str) -> np.ndarray:
        return np.asarray([np.mean(v) if (v := scores(encoder, t, arm, train_set)) else np.nan for t in tasks])

    sections = []
    for arm in config.arms:
        for train_set in config.train_sets:
            got = {(e, t): scores(e, t, arm, train_set) for e in encoders for t in tasks}
            complete = all(
                len(scores(u, t, a, train_set)) == config.replicas for u in refs for t in tasks for a in ARMS
            ) and all(len(got[e, t]) == config.replicas for e in encoders for t in tasks)
            mean = np.asarray([[np.mean(got[e, t]) if got[e, t] else np.nan for t in tasks] for e in encoders])
            std = np.asarray([[np.std(got[e, t]) if got[e, t] else np.nan for t in tasks] for e in encoders])
            count = np.asarray([[len(got[e, t]) for t in tasks] for e in encoders])
            clip = np.asarray(
                [[np.mean(clip_by_key[e, t, arm, train_set]) if got[e, t] else np.nan for t in tasks] for e in encoders]
            )
            zeros = {u: reference(u, "frozen", train_set) for u in refs}
            ones = {u: reference(u, "finetuned", train_set) for u in refs}
            defined = {u: np.isfinite(normalise(zeros[u], zeros[u], ones[u])) for u in refs}
            left_out = {
                u: {
                    t: (
                        "no score of a reference yet"
                        if np.isnan([zeros[u][j], ones[u][j]]).any()
                        else f"{u} frozen and trained from scratch both score {zeros[u][j]:.3f}"
                    )
                    for j, t in enumerate(tasks)
                    if not defined[u][j]
                }
                for u in refs
                if not defined[u].all()
            }
            inverted = {
                u: ts
                for u in refs
                if (ts := [t for j, t in enumerate(tasks) if defined[u][j] and ones[u][j] < zeros[u][j]])
            }
            nan = np.full(mean.shape, np.nan)
            zero = np.stack([zeros[u] for u in row_refs]) if refs else nan
            one = np.stack([ones[u] for u in row_refs]) if refs else nan
            norm = normalise(mean, zero, one)
            values = mean if raw else norm
            avg, low, high = (np.full(len(encoders), np.nan) for _ in range(3))
            for u in refs or [None]:  # the rows of each reference (raw: every row) over its defined tasks
                rows_u = [i for i in range(len(encoders)) if raw or row_refs[i] == u]
                keep = np.ones(len(tasks), bool) if raw else defined[u]
                if keep.any():
                    avg[rows_u], low[rows_u], high[rows_u] = bootstrap_mean(
                        values[np.ix_(rows_u, keep)],
                        int(config.bootstrap.resamples),
                        int(config.bootstrap.seed),
                        float(config.bootstrap.interval),
                    )
            sections.append(
                dict(
                    arm=arm,
                    train_set=train_set,
                    label=train_set_label(config, train_set),
                    complete=complete,
                    scale="raw" if raw else "normalised",
                    encoders=encoders,
                    tasks=tasks,
                    metrics=[metric.get(t, "") for t in tasks],
                    mean=mean,
                    std=std,
                    count=count,
                    clip_mean=clip,
                    references=row_refs,
                    zero=zero,
                    one=one,
                    normalised=norm,
                    values=values,
                    average=avg,
                    low=low,
                    high=high,
                    left_out=left_out,
                    inverted=inverted,
                    untrained=refs,
                )
            )
    return sections


# ---------------------------------------------------------------------------- table and figure


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def markdown_table(sections: list[dict[str, Any]], config: ml_collections.ConfigDict) -> str:
    """Table I: one table per (arm, training set); rows encoders, columns tasks + average."""
    order = encoder_order(config)
    refs = [reference_of(config, e) for e in order]
    interval = (
        f"[{100 * config.bootstrap.interval:.0f}% interval from "
        f"{config.bootstrap.resamples} bootstrap resamples of the tasks]."
    )
    if is_raw(config):
        average = f"Average: the raw scores averaged over tasks (config.scale='raw': not normalised) {interval}"
    else:
        average = (
            "Average: normalised score (s - zero) / (one - zero) (eq. 1), zero = the encoder's untrained "
            "reference frozen (linear head only), one = that reference fine-tuned (encoder and head trained "
            f"from scratch), per task and training set and the same for both arms, averaged over tasks {interval} "
            "Untrained references: "
            + "; ".join(
                f"{u} for {', '.join(e for e, r in zip(order, refs) if r == u and e != u) or 'no other row'}"
                for u in references(config)
            )
            + "."
        )
    lines = [
        "# Downstream evaluation (Tagliasacchi et al. 2020, Table I layout)",
        "",
        f"Cells: score on the task's test split, mean +- std over {config.replicas} "
        f"replica{'s' if config.replicas != 1 else ''}. " + average,
    ]
    for s in sections:
        arm = "frozen encoder, linear probe" if s["arm"] == "frozen" else "fine-tuned encoder"
        status = "" if s["complete"] else " (incomplete: some runs are missing)"
        heads = [f"{t} ({m})" if m else t for t, m in zip(s["tasks"], s["metrics"])]
        lines += [
            "",
            f"## {arm}, {s['label']}{status}",
            "",
            "| encoder | " + " | ".join(heads) + f" | average ({s['scale']}) |",
            "|---" * (len(heads) + 2) + "|",
        ]
        for i, enc in enumerate(s["encoders"]):
            cells = [
                f"{_fmt(s['mean'][i, j])} +- {_fmt(s['std'][i, j])}" if s["count"][i, j] else "-"
                for j in range(len(s["tasks"]))
            ]
            avg = f"{_fmt(s['average'][i], 2)} [{_fmt(s['low'][i], 2)}, {_fmt(s['high'][i], 2)}]"
            lines.append(f"| {enc} | " + " | ".join(cells) + f" | {avg} |")
        if np.isfinite(s["clip_mean"]).any():
            lines += [
                "",
                "Clip-level accuracy (mean of the slice scores per clip), mean over replicas: "
                + "; ".join(
                    f"{enc} " + ", ".join(_fmt(v) for v in s["clip_mean"][i]) for i, enc in enumerate(s["encoders"])
                )
                + ".",
            ]
        for u in s["untrained"]:
            i = s["encoders"].index(u)
            pairs = zip(s["tasks"], s["zero"][i], s["one"][i])
            lines += [
                "",
                f"References of {u} (zero / one): "
                + "; ".join(f"{t} {_fmt(z)} / {_fmt(o)}" for t, z, o in pairs)
                + ".",
            ]
        for u, why in s["left_out"].items():
            lines += [
                "",
                f"Average of the rows normalised by {u} over {len(s['tasks']) - len(why)} of {len(s['tasks'])} "
                "tasks; left out, normalisation undefined: "
                + "; ".join(f"{t} ({reason})" for t, reason in why.items())
                + ".",
            ]
        if s["inverted"]:
            lines += ["", inverted_warning(s)]
    return "\n".join(lines) + "\n"


def inverted_warning(section: Mapping[str, Any]) -> str:
    """The warning, for table and figure alike, naming the tasks where eq. (1)'s scale runs backwards."""
    where = "; ".join(f"below {u} frozen on {', '.join(tasks)}" for u, tasks in section["inverted"].items())
    return f"Warning: training from scratch scores {where}; there a higher normalised score means a lower task score."


def figure(sections: list[dict[str, Any]]) -> Any:
    """Fig. 2 as a matplotlib figure: per (arm, training set) a panel of normalised (or raw: config.scale) scores,
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

    fig, axes = plt.subplots(
        len(sections), 1, figsize=(max(6.0, 1.6 * (len(sections[0]["tasks"]) + 1)), 3.4 * len(sections)), squeeze=False
    )
    for ax, s in zip(axes[:, 0], sections):
        groups = s["tasks"] + ["average"]
        n = len(s["encoders"])
        width = 0.8 / n
        x = np.arange(len(groups))
        for i in range(len(s["encoders"])):
            heights = np.append(s["values"][i], s["average"][i])
            err = np.full((2, len(groups)), np.nan)
            err[:, -1] = [s["average"][i] - s["low"][i], s["high"][i] - s["average"][i]]
            at = x + (i - (n - 1) / 2) * width
            shown = np.isfinite(heights)
            ax.bar(at[shown], heights[shown], width, color=f"C{i}", yerr=np.nan_to_num(err[:, shown]), capsize=2)
            for position in at[~shown]:
                ax.text(
                    position,
                    0.02,
                    "n/a",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize="small",
                    color=f"C{i}",
                    transform=ax.get_xaxis_transform(),
                )
        ax.axhline(0.0, color="black", linewidth=0.6)
        if s["scale"] == "normalised":
            ax.axhline(1.0, color="grey", linewidth=0.6, linestyle="--")
        ax.set_xticks(x, groups, rotation=20, ha="right")
        ax.set_ylabel(f"{s['scale']} score")
        title = f"{s['arm']}, {s['label']}"
        if s["inverted"]:
            title += "\n" + textwrap.fill(inverted_warning(s), 90)
        ax.set_title(title, fontsize="medium")
        ax.legend(
            handles=[Patch(color=f"C{i}", label=enc) for i, enc in enumerate(s["encoders"])],
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
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

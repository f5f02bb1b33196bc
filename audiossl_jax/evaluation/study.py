"""Does pre-training help? A small study on real audio, one command (issue 15).

    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --workdir=runs/study_small
    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --config.budget=20000 --workdir=runs/gpu

1. The unlabeled pool (``config.pool``): an audio folder of short 16 kHz clips made from
   free audio that Debian packages install, by ``../shared/tools/make_unlabeled_pool.py``.
   When the folder has no metadata.csv the command runs that tool (``config.pool_tool``,
   with this Python; its packages and soundfile/soxr must be installed, see its docstring)
   and stops with the recipe when it cannot.
2. Pre-training: every method of both papers (``config.methods``: the pretext tasks of
   Tagliasacchi et al. 2020 on their CNN, the conformer wav2vec 2.0 of Srivastava et al.
   2022) on the pool for ``config.budget`` steps each, at the study's scale
   (``config.pretrain``: batch, crop, width, learning rate), into
   ``<workdir>/encoders/<name>`` (resumes). Beside them: ``supervised``, the CNN trained
   on the pool's ``config.supervised_label`` column for the same steps (the paper's
   AudioSet-supervised row), and the untrained CNN and conformer (eq. 1's references).
3. The protocol (``evaluation.protocol``) on ``config.tasks`` with the study's encoders plus
   ``logmel_stats``, the linear probe on the log-mels' mean and std over time
   (``evaluation.baselines``), a row of every table.
4. The conformer paper's label-fraction claim (Srivastava et al. 2022, Table 1: pre-trained
   then fine-tuned on a third of the labels matches training from scratch on all of them):
   the study's conformer fine-tuned (the protocol's fine-tuned-arm recipe, ``config.finetune``)
   on ``label_fractions.percents`` of ``label_fractions.task``'s training labels, pre-trained
   and from random weights, ``config.replicas`` seeds: the ``evaluation.grids`` label-fraction
   grid in ``<workdir>/label_fractions`` (its table.md, figure.png, summary.json).

5. Probes along the way (``config.probe_steps``, e.g. (100, 200, 400) for a budget of 800):
   every pre-trained encoder keeps its checkpoints of those steps, and the protocol probes
   each as its own row ``<method>@<step>``; ``probe_curve.md`` and ``probe_curve.png`` give the
   score against pre-training steps, step 0 being the method's untrained reference (the
   same encoder architecture, randomly initialised), ``logmel_stats`` a horizontal line
   (``probe_curve``).

Writes ``<workdir>/study.json`` (the study config, the budget), ``compute.json``
(per encoder: steps, pre-training wall time of every finished call, machine) and
``targets.md`` (the issue's targets, reached or how far it got: ``targets``), besides the
protocol's results.csv, table.md, figure.png and summary.json and the label-fraction grid's files. One budget per workdir:
a rerun with another budget is refused (its results.csv rows would be stale).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from audiossl_jax import config_grids, config_lib  # noqa: E402
from audiossl_jax.data import pipeline, registry  # noqa: E402
from audiossl_jax.data.registry import DatasetError  # noqa: E402
from audiossl_jax.evaluation import baselines, grids, protocol, report  # noqa: E402

# The pretext tasks of Tagliasacchi et al., each configs/pretrain_<name>.py, and the conformer
# (configs/pretrain_cfS.py).
CNN_METHODS = ("audio2vec_cbow", "audio2vec_sg", "temporal_gap", "triplet", "arrow_of_time", "autoencoder")
CONFORMER = "wav2vec2"
METHODS = (*CNN_METHODS, CONFORMER)
SUPERVISED, UNTRAINED, UNTRAINED_CONFORMER, BASELINE = "supervised", "untrained", "untrained_conformer", "logmel_stats"
STUDY_FILE, COMPUTE_FILE, TARGETS_FILE = "study.json", "compute.json", "targets.md"
CURVE_TABLE, CURVE_FIGURE = "probe_curve.md", "probe_curve.png"
LABEL_FRACTIONS_DIR = "label_fractions"
# Keys of the study config that are not the protocol's.
STUDY_KEYS = (
    "pool",
    "pool_tool",
    "pool_dataset",
    "budget",
    "methods",
    "pretrain",
    "supervised_label",
    "preset",
    "label_fractions",
    "probe_steps",
)


def pool_data(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The data config of pre-training: the pool folder (or ``config.pool_dataset``), random crops."""
    data = pipeline.default_data_config()
    data.name = config.pool_dataset
    if config.pool_dataset == "audio_folder":
        data.path = config.pool
    data.crop_seconds = float(config.pretrain.crop_seconds)
    return data


def ensure_pool(config: ml_collections.ConfigDict) -> None:
    """Builds the pool with ``config.pool_tool`` when ``config.pool`` has no metadata.csv; FileNotFoundError
    naming the recipe when there is no tool, RuntimeError when the tool fails."""
    if config.pool_dataset != "audio_folder":
        return
    pool = pathlib.Path(config.pool)
    if (pool / "metadata.csv").is_file():
        return
    tool = pathlib.Path(config.pool_tool)
    recipe = f"the recipe in the docstring of {tool} (apt-get install its Debian packages; pip install soundfile soxr)"
    if not tool.is_file():
        raise FileNotFoundError(
            f"config.pool={pool}: no metadata.csv and no pool tool {tool}; build the pool by {recipe}"
        )
    logging.info("config.pool=%s has no metadata.csv: building it with %s (minutes)", pool, tool)
    done = subprocess.run([sys.executable, str(tool), "--out", str(pool)], check=False)
    if done.returncode != 0 or not (pool / "metadata.csv").is_file():
        raise RuntimeError(
            f"{tool} --out {pool} failed (exit {done.returncode}); follow {recipe}, "
            "or set --config.pool to a built pool"
        )


def _scale(c: ml_collections.ConfigDict, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A pre-training config at the study's scale: the pool, ``config.budget`` steps, ``config.pretrain``."""
    p = config.pretrain
    c.data = pool_data(config)
    c.data.sample_rate = int(c.frontend.sample_rate)
    c.total_steps = int(config.budget)
    c.seed = int(p.seed)
    c.batch_size = int(p.batch_size)
    c.log_every_steps = max(1, min(int(p.log_every_steps), c.total_steps))
    c.checkpoint.every_steps, c.checkpoint.asynchronous = c.total_steps, False
    if config.probe_steps:  # keep every checkpoint the probes along the way read
        c.checkpoint.every_steps = math.gcd(c.total_steps, *(int(s) for s in config.probe_steps))
        c.checkpoint.max_to_keep = c.total_steps // c.checkpoint.every_steps + 1
    if p.learning_rate > 0:
        c.schedule.peak_learning_rate = float(p.learning_rate)
    if c.schedule.get("warmup_steps", 0):
        c.schedule.warmup_steps = max(1, c.total_steps // 10)
    return c


def cnn_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """``configs/pretrain_<name>.py:<config.preset>`` at the study's scale (width: ``pretrain.channels``)."""
    c = _scale(config_lib.load_config_file(f"pretrain_{name}.py:{config.preset}"), config)
    if config.pretrain.channels:
        c.model.channels = tuple(int(x) for x in config.pretrain.channels)
    if config.pretrain.embed_dim:
        c.model.embed_dim = int(config.pretrain.embed_dim)
    c.task.slice_frames = 96 if config.preset != "smoke" else 32  # one slicing for every CNN: one reference
    return c


def encoder_configs(config: ml_collections.ConfigDict) -> dict[str, tuple[ml_collections.ConfigDict, bool]]:
    """Every encoder of the study: name -> (run config, untrained)."""
    unknown = sorted(set(config.methods) - set(METHODS))
    config_lib.require(not unknown, "methods", tuple(config.methods), f"unknown {unknown}; use a subset of {METHODS}.")
    out = {UNTRAINED: (cnn_config(config, "supervised"), True)}
    if config.supervised_label:  # '' leaves the supervised encoder out (quick measurements)
        supervised = cnn_config(config, "supervised")
        supervised.data.label_key = config.supervised_label
        info = registry.get_dataset_info(supervised.data, supervised.data.train_split)
        config_lib.require(
            info.num_classes >= 2,
            "supervised_label",
            config.supervised_label,
            f"the pool's column for the supervised encoder has {info.num_classes} classes; name a labelled column.",
        )
        supervised.task.num_classes, supervised.task.multi_label = int(info.num_classes), False
        out[SUPERVISED] = (supervised, False)
    for name in config.methods:
        if name == CONFORMER:
            conformer = _scale(config_lib.load_config_file(f"pretrain_cfS.py:{config.preset}"), config)
            out[UNTRAINED_CONFORMER] = (conformer, True)
            out[CONFORMER] = (conformer, False)
        else:
            out[name] = (cnn_config(config, name), False)
    return out


def probe_name(method: str, step: int) -> str:
    """The protocol's row of ``method``'s checkpoint at ``step`` (a probe along the way)."""
    return protocol.at_step(method, step)


def untrained_of(method: str) -> str:
    """The untrained reference of ``method``: the same encoder architecture with random weights."""
    return UNTRAINED_CONFORMER if method == CONFORMER else UNTRAINED


def check_probe_steps(config: ml_collections.ConfigDict) -> None:
    """``probe_steps`` lie strictly between 0 and the budget; ValueError naming the key otherwise."""
    steps = [int(s) for s in config.probe_steps]
    config_lib.require(
        all(0 < s < int(config.budget) for s in steps) and len(set(steps)) == len(steps),
        "probe_steps",
        tuple(config.probe_steps),
        f"give distinct steps between 0 and config.budget={config.budget} (the last checkpoint is probed anyway).",
    )


def protocol_config(config: ml_collections.ConfigDict, dirs: dict[str, pathlib.Path]) -> ml_collections.ConfigDict:
    """The protocol config: the study's protocol keys, its encoders as run directories (and their
    ``probe_steps`` checkpoints as ``<method>@<step>``), the baseline."""
    c = ml_collections.ConfigDict({k: v for k, v in config.to_dict().items() if k not in STUDY_KEYS})
    encoders = {name: str(d) for name, d in dirs.items()}
    untrained_for = {CONFORMER: UNTRAINED_CONFORMER} if CONFORMER in dirs else {}
    for method in [m for m in config.methods if m in dirs]:
        for step in (int(s) for s in config.probe_steps):
            encoders[probe_name(method, step)] = protocol.at_step(str(dirs[method]), step)
            if method == CONFORMER:
                untrained_for[probe_name(method, step)] = UNTRAINED_CONFORMER
    c.encoders = {**encoders, BASELINE: f"{baselines.PREFIX}{BASELINE}"}
    c.untrained = UNTRAINED
    c.untrained_for = untrained_for
    return c


def probe_curve(config: ml_collections.ConfigDict, sections: list[dict]) -> dict[str, Any]:
    """Score against pre-training step of every method, per (arm, training set) and task.

    Step 0 is the method's untrained reference (same encoder architecture, random weights), the last step
    ``config.budget``; the scores are the protocol's means over replicas (raw or normalised
    as its table). Returns ``{"steps": [...], "panels": [{"arm", "label", "task", "scale",
    "baseline", "curves": {method: [score per step]}}]}``.
    """
    steps = [0, *sorted(int(s) for s in config.probe_steps), int(config.budget)]
    panels = []
    for s in sections:
        enc = s["encoders"]
        scores = np.asarray(s["normalised"] if s["scale"] == "normalised" else s["mean"], float)
        methods = [m for m in config.methods if m in enc and all(probe_name(m, t) in enc for t in steps[1:-1])]
        for j, task in enumerate(s["tasks"]):
            curves = {}
            for m in methods:
                names = [untrained_of(m), *(probe_name(m, t) for t in steps[1:-1]), m]
                curves[m] = [float(scores[enc.index(n), j]) if n in enc else float("nan") for n in names]
            base = float(scores[enc.index(BASELINE), j]) if BASELINE in enc else float("nan")
            panels.append(
                dict(arm=s["arm"], label=s["label"], task=task, scale=s["scale"], baseline=base, curves=curves)
            )
    return {"steps": steps, "panels": panels}


def curve_markdown(curve: dict[str, Any]) -> str:
    """``probe_curve`` as Markdown tables, one per panel: rows = methods, columns = steps."""
    steps = curve["steps"]
    lines = ["# Probes along the way: score against pre-training steps", ""]
    for p in curve["panels"]:
        lines += [
            f"## {p['arm']}, {p['label']}, {p['task']} ({p['scale']}; logmel_stats {p['baseline']:.3f})",
            "",
            "| method | " + " | ".join(f"step {t}" for t in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        lines += [f"| {m} | " + " | ".join(f"{v:.3f}" for v in vals) + " |" for m, vals in p["curves"].items()]
        lines.append("")
    return "\n".join(lines)


def plot_curve(curve: dict[str, Any], path: pathlib.Path) -> None:
    """``probe_curve`` as a PNG: one panel per (arm, training set, task), a line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = curve["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for i, (m, vals) in enumerate(p["curves"].items()):
            ax.plot(curve["steps"], vals, marker="o", color=f"C{i}", label=m)
        if np.isfinite(p["baseline"]):
            ax.axhline(p["baseline"], color="black", linestyle="--", linewidth=0.8, label=BASELINE)
        ax.set_xlabel("pre-training step (0 = untrained)")
        ax.set_ylabel(f"{p['scale']} score")
        ax.set_title(f"{p['task']}\n{p['arm']}, {p['label']}", fontsize="medium")
    axes[0, -1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def check_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Writes ``study.json``, or refuses a workdir whose ``study.json`` pre-trained at another scale.

    The scale is ``config.budget``, ``config.preset`` and every key of ``config.pretrain``
    but ``log_every_steps`` (batch, crop, learning rate, width, seed): the workdir's checkpoints
    and results.csv rows were made at the stored one. Keys the stored file lacks (older
    studies) are not compared.
    """
    path = workdir / STUDY_FILE
    if path.is_file():
        before = json.loads(path.read_text())
        now = json.loads(config.to_json_best_effort())
        pairs = [(k, before.get(k), now.get(k)) for k in ("budget", "preset") if k in before]
        pairs += [
            (f"pretrain.{k}", v, now["pretrain"].get(k))
            for k, v in before.get("pretrain", {}).items()
            if k != "log_every_steps"
        ]
        for key, was, is_now in pairs:
            if was != is_now:
                raise ValueError(
                    f"config.{key}={is_now!r}, but {workdir} holds a study of {key} {was!r} (its checkpoints and "
                    "results.csv rows are of that study); use another --workdir"
                )
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json_best_effort(indent=2))


def pretrain(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Trains (resuming) or saves every encoder into ``workdir/encoders/<name>``; logs each call's
    wall time into ``compute.json``; returns name -> run directory."""
    compute_path = workdir / COMPUTE_FILE
    compute = json.loads(compute_path.read_text()) if compute_path.is_file() else {}
    dirs = {}
    for name, (c, untrained) in encoder_configs(config).items():
        target = workdir / "encoders" / name
        t0 = time.perf_counter()
        protocol.prepare_encoder(name, c, target, untrained=untrained)
        entry = compute.setdefault(name, {"calls": []})
        entry.update(
            steps=0 if untrained else int(c.total_steps),
            batch_size=int(c.batch_size),
            crop_seconds=float(c.data.crop_seconds),
            model=str(c.model.name),
            learning_rate=float(c.schedule.peak_learning_rate),
            seed=int(c.seed),
        )
        entry["calls"].append(
            dict(
                seconds=round(time.perf_counter() - t0, 1),
                machine=f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
                date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            )
        )
        compute_path.write_text(json.dumps(compute, indent=2))
        dirs[name] = target
    return dirs


def label_fraction_grid(config: ml_collections.ConfigDict, evaluator: protocol.Evaluator) -> ml_collections.ConfigDict:
    """The ``evaluation.grids`` label-fraction grid of the study's conformer on ``label_fractions.task``.

    ``base`` is the protocol's fine-tuned-arm config of the pre-trained conformer on the full
    training split (replica 0's seed; the grid seeds replica k with seed + k, as the protocol
    does); arm 'scratch' is the same config from random weights. ``config.replicas`` replicas.
    """
    lf = config.label_fractions
    config_lib.require(
        lf.task in config.tasks, "label_fractions.task", lf.task, f"use one of config.tasks {sorted(config.tasks)}."
    )
    config_lib.require(
        100 in lf.percents and lf.claim_percent in lf.percents,
        "label_fractions.percents",
        tuple(lf.percents),
        f"must hold 100 (the from-scratch reference) and claim_percent={lf.claim_percent}.",
    )
    base = evaluator.finetune_config(protocol.Run(CONFORMER, lf.task, "finetuned", "full", 0))
    _, multi_label = evaluator.num_classes(lf.task)
    grid = config_grids.grid_config("label_fractions", "mAP" if multi_label else "accuracy")
    grid.base = base
    grid.label_fractions = ml_collections.ConfigDict(
        dict(
            labels=tuple(f"{p:g}%" for p in lf.percents),
            percents=tuple(lf.percents),
            balanced_percent=0,
            arms=grids.ARMS,
            replicas=int(config.replicas),
            pretrained=str(base.task.pretrained_workdir),
        )
    )
    return grid


def label_fractions(
    config: ml_collections.ConfigDict,
    protocol_cfg: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    runner: grids.Runner = grids.finetune_run,
) -> dict | None:
    """Runs (resuming) ``label_fraction_grid`` into ``workdir/label_fractions``; its summary, or None
    when the study has no conformer or ``label_fractions.percents`` is empty."""
    if CONFORMER not in config.methods or not config.label_fractions.percents:
        return None
    grid = label_fraction_grid(config, protocol.Evaluator(protocol_cfg, workdir))
    grids.validate(grid)
    return grids.run_label_fractions(grid, workdir / LABEL_FRACTIONS_DIR, runner)


def claim_line(config: ml_collections.ConfigDict, summary: dict | None) -> str:
    """Target 3 as a Markdown line: the conformer fine-tuned on ``claim_percent`` of the labels after
    pre-training, against it from scratch on all of them; reached when its mean over replicas is at
    least as high."""
    lf = config.label_fractions
    head = "3. the conformer pre-trained and fine-tuned on a third of the labels matches it from scratch on all:"
    if summary is None:
        return f"{head} not run (no '{CONFORMER}' in config.methods, or label_fractions.percents is empty)."
    rows = {r["percent"]: r for r in summary["rows"]}
    part, full = rows[lf.claim_percent], rows[100]
    pre, scratch = float(part["pretrained"]), float(full["scratch"])
    spread = ""
    if "pretrained_replicas" in part:
        pairs = zip(part["pretrained_replicas"], full["scratch_replicas"])
        spread = "; per replica " + ", ".join(f"{a:.3f} vs {b:.3f}" for a, b in pairs)
    return (
        f"{head} {'REACHED' if pre >= scratch else 'NOT reached'} ({lf.task}, {summary['metric']}: "
        f"{lf.claim_percent}% = {part['labelled_clips']} clips pre-trained {pre:.3f} vs all "
        f"{full['labelled_clips']} clips from scratch {scratch:.3f}, difference {pre - scratch:+.3f}{spread}; "
        f"the curve: {LABEL_FRACTIONS_DIR}/table.md)."
    )


def targets(config: ml_collections.ConfigDict, sections: list[dict], fractions: dict | None = None) -> str:
    """The issue's targets, per (arm, training set), as Markdown: reached or how far it got.

    1. every pre-trained encoder above its untrained reference: the mean over tasks of
       (score - reference's score), normalised or raw as the table, with its bootstrap
       interval over tasks (``report.bootstrap_mean``), reached when the interval's low end is > 0;
    2. the best pre-trained encoder above ``logmel_stats`` on >= 2 tasks (mean over replicas);
    3. the conformer fine-tuned on a third of the labels after pre-training matches it from scratch
       on all of them (``claim_line``, from ``fractions``: the label-fraction grid's summary).
    """
    b = config.bootstrap
    lines = ["# Targets of issue 15", ""]
    for s in sections:
        enc, tasks, mean = s["encoders"], s["tasks"], np.asarray(s["mean"], float)
        methods = [m for m in config.methods if m in enc]
        lines += [f"## {s['arm']}, {s['label']}", ""]
        reached = []
        for m in methods:
            ref = enc.index(untrained_of(m))
            i = enc.index(m)
            if s["scale"] == "normalised":
                diff = np.asarray(s["normalised"], float)[i] - np.asarray(s["normalised"], float)[ref]
            else:
                diff = mean[i] - mean[ref]
            avg, low, high = (float(v[0]) for v in report.bootstrap_mean(diff, b.resamples, b.seed, b.interval))
            reached.append(low > 0)
            per_task = ", ".join(f"{t} {d:+.3f}" for t, d in zip(tasks, diff))
            lines.append(
                f"- {m} - {enc[ref]} ({s['scale']}): {avg:+.3f} [{low:+.3f}, {high:+.3f}] ({per_task})"
                f"{' above 0' if low > 0 else ''}"
            )
        ok = bool(methods) and all(reached)
        lines += [
            "",
            f"1. every pre-trained encoder above its untrained reference: {'REACHED' if ok else 'NOT reached'} "
            f"({sum(reached)} of {len(methods)} with the interval above 0).",
        ]
        if BASELINE in enc and methods:
            base = mean[enc.index(BASELINE)]
            rows = np.stack([mean[enc.index(m)] for m in methods])
            wins = int(np.sum(rows.max(axis=0) > base))
            best = ", ".join(
                f"{t}: best {methods[int(np.argmax(rows[:, j]))]} {rows[:, j].max():.3f} vs {base[j]:.3f}"
                for j, t in enumerate(tasks)
            )
            lines.append(
                f"2. the best pre-trained encoder above logmel_stats on >= 2 of {len(tasks)} tasks: "
                f"{'REACHED' if wins >= 2 else 'NOT reached'} ({wins}; {best})."
            )
        lines.append("")
    lines += ["## the conformer's label fractions, fine-tuned", "", claim_line(config, fractions), ""]
    return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, max_runs: int | None = None) -> list:
    """The whole study: pool, pre-training, protocol, label fractions, ``targets.md``; returns the protocol's
    report sections."""
    workdir = pathlib.Path(workdir)
    check_probe_steps(config)
    check_workdir(config, workdir)
    ensure_pool(config)
    dirs = pretrain(config, workdir)
    protocol_cfg = protocol_config(config, dirs)
    sections = protocol.run(protocol_cfg, workdir, max_runs=max_runs)
    fractions = label_fractions(config, protocol_cfg, workdir)
    (workdir / TARGETS_FILE).write_text(targets(config, sections, fractions))
    if config.probe_steps:
        curve = probe_curve(config, sections)
        (workdir / CURVE_TABLE).write_text(curve_markdown(curve))
        plot_curve(curve, workdir / CURVE_FIGURE)
    return sections


def main(argv: list[str]) -> None:
    cli.start(argv)
    with cli.user_errors(DatasetError, FileNotFoundError, ValueError, RuntimeError):
        run(flags.FLAGS.config, flags.FLAGS.workdir, max_runs=flags.FLAGS.max_runs)
    print((pathlib.Path(flags.FLAGS.workdir) / "table.md").read_text())


if __name__ == "__main__":
    cli.define_config("Study config file, e.g. configs/study_small.py.")
    cli.define_workdir("Directory for the encoders, the protocol's runs and reports, study.json and compute.json.")
    flags.DEFINE_integer("max_runs", None, "Stop after this many new protocol runs (the rest run on the next call).")
    app.run(main)

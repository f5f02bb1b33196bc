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

An encoder is a run directory (``runs/x``; ``runs/x@500``: its checkpoint of step 500
instead of the latest), a config to train here (``train:``) or to save untrained
(``untrained:``), or a feature baseline. CNN and conformer encoders, and feature baselines (``baseline:logmel_stats``: a linear probe on the
log-mels' mean and std over time, ``evaluation.baselines``; 'clips' recipe; with nothing to
fine-tune, its fine-tuned arm is the same probe); training sets ``full`` and ``subset`` (``n_train`` random examples, the same for
every encoder of a replica), ``replicas`` seeds. Writes into ``--workdir``:

* ``results.csv``: one row per run, appended as each finishes; a rerun skips the rows
  already there, so an interrupted protocol resumes where it stopped;
* ``table.md``: per (arm, training set), rows = encoders, columns = tasks (score, mean
  +- std over replicas) and the average normalised (or raw) score with its bootstrap interval,
  laid out like the paper's Table I;
* ``figure.png``: normalised score per task and averaged, one bar per encoder, like its Fig. 2;
* ``summary.json``: the numbers of the table.

The four files are ``evaluation.report``'s (NumPy and matplotlib only, no JAX).

Normalised score of encoder e on task t (the paper's eq. 1), the same references for both
arms: (s_e - s_zero) / (s_one - s_zero), with s_zero the untrained encoder's frozen arm
(random frozen encoder + trained linear head) and s_one its fine-tuned arm (encoder and
head trained from scratch on the task), per task and training set, s the mean over
replicas. Each encoder's untrained reference has its slicing and architecture
(``config.untrained_for`` maps an encoder to its own when ``config.untrained`` differs;
``validate`` refuses a mismatch). The protocol always runs both arms of every untrained
reference so both references exist. ``config.scale='raw'`` reports raw scores instead and
runs no reference. The average over tasks has a percentile interval from
``bootstrap.resamples`` resamples of the tasks with replacement (seeded).

Tasks beyond the config's: ``--task=name:key=value,...`` (data config keys; repeatable), e.g.
``--task=birds:name=audio_folder,path=/data/birds,label_key=species,crop_seconds=5``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from audiossl_jax import config_lib, save_untrained  # noqa: E402
from audiossl_jax.config_lib import require  # noqa: E402
from audiossl_jax.data import pipeline, registry, subset  # noqa: E402
from audiossl_jax.evaluation import baselines, embeddings, finetune, linear, report, slices  # noqa: E402
from audiossl_jax.tasks.classification import ClassificationTask  # noqa: E402
from audiossl_jax.train import checkpoint, restore, sharding, trainer  # noqa: E402

RECIPES = ("slices", "clips")
TRAIN_PREFIX, UNTRAINED_PREFIX = "train:", "untrained:"
STEP_SEPARATOR = "@"  # runs/x@500: the run directory runs/x at its checkpoint of step 500


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

    names = list(config.encoders.keys())
    scale = config.get("scale", "normalised")
    require(scale in report.SCALES, "scale", scale, f"use one of {report.SCALES}.")
    if scale == "normalised":
        require(
            config.untrained in names,
            "untrained",
            config.untrained,
            f"must name one of config.encoders {names} (or set config.scale='raw': no normalisation).",
        )
    else:
        require(
            not config.get("untrained", None) or config.untrained in names,
            "untrained",
            config.untrained,
            f"must name one of config.encoders {names}, or be empty.",
        )
    for encoder, reference in report.untrained_for(config).items():
        require(
            encoder in names and reference in names and encoder not in report.references(config),
            f"untrained_for.{encoder}",
            reference,
            f"map an encoder that is not itself a reference to an untrained encoder, both of config.encoders {names}.",
        )
    require(config.recipe in RECIPES, "recipe", config.recipe, f"use one of {RECIPES}.")
    if config.recipe == "slices":
        sl = config.slices
        for key in ("seconds", "learning_rate", "total_steps", "batch_size", "per_clip"):
            require(sl[key] > 0, f"slices.{key}", sl[key], "must be > 0 (the paper: 0.975 s, 1e-4, 100k steps).")
    require(len(config.tasks) >= 1, "tasks", list(config.tasks.keys()), "needs at least one task.")
    require(
        len(config.arms) >= 1 and set(config.arms) <= set(report.ARMS),
        "arms",
        tuple(config.arms),
        f"use a subset of {report.ARMS}.",
    )
    require(
        len(config.train_sets) >= 1 and set(config.train_sets) <= set(report.TRAIN_SETS),
        "train_sets",
        tuple(config.train_sets),
        f"use a subset of {report.TRAIN_SETS}.",
    )
    require(config.replicas >= 1, "replicas", config.replicas, "must be >= 1 (the paper: 4).")
    require(config.n_train >= 1, "n_train", config.n_train, "must be >= 1 (the paper: 1000).")
    require(config.bootstrap.resamples >= 1, "bootstrap.resamples", config.bootstrap.resamples, "must be >= 1.")
    require(0 < config.bootstrap.interval < 1, "bootstrap.interval", config.bootstrap.interval, "must lie in (0, 1).")
    for task, keys in config.tasks.items():
        for key, off in (("train_fraction", 1.0), ("train_size", 0)):
            require(
                keys.get(key, off) == off,
                f"tasks.{task}.{key}",
                keys.get(key),
                "the protocol sets the training examples itself (config.train_sets, config.n_train); remove it.",
            )
    for name, spec in config.encoders.items():
        require(
            isinstance(spec, str) and bool(spec),
            f"encoders.{name}",
            spec,
            f"give a run directory, '{TRAIN_PREFIX}<config.py[:variant]>', '{UNTRAINED_PREFIX}<config.py[:variant]>' "
            f"or '{baselines.PREFIX}<name>'.",
        )
        if baselines.is_baseline(spec):
            baselines.make(spec)
            require(
                config.recipe == "clips", f"encoders.{name}", spec, "a feature baseline needs config.recipe='clips'."
            )
            require(name not in report.references(config), f"encoders.{name}", spec, "a baseline is no reference.")
            continue
        path, _ = run_and_step(name, spec)
        if not spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)) and not (pathlib.Path(path) / "config.json").is_file():
            raise FileNotFoundError(
                f"config.encoders.{name}={spec!r}: {pathlib.Path(path) / 'config.json'} not found; give the "
                f"directory of a training run, or '{TRAIN_PREFIX}configs/<file>.py[:variant]' to train it here"
            )
    check_references(config)


# What an encoder shares with its untrained reference: the frontend, the CNN's slice and its width.
ARCHITECTURE_KEYS = ("frontend", "task.slice_frames", "model.channels", "model.embed_dim")


def run_and_step(name: str, spec: str) -> tuple[str, int | None]:
    """``spec`` without a trailing ``@<step>`` and that step (None: the latest checkpoint).

    Only a run directory takes a step; ValueError naming ``config.encoders.<name>`` when the
    part after the last ``@`` is not a step number.
    """
    if spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)) or baselines.is_baseline(spec):
        return spec, None
    path, sep, step = spec.rpartition(STEP_SEPARATOR)
    if not sep or "/" in step:
        return spec, None
    require(
        step.isdigit(), f"encoders.{name}", spec, f"after '{STEP_SEPARATOR}' give a checkpoint step, e.g. runs/x@500."
    )
    return path, int(step)


def at_step(spec: str, step: int) -> str:
    """``spec`` at its checkpoint of ``step`` (``runs/x`` -> ``runs/x@500``): the form ``run_and_step`` parses."""
    return f"{spec}{STEP_SEPARATOR}{step}"


def encoder_config(spec: str) -> ml_collections.ConfigDict:
    """The run config of an encoder spec, without training it: the config file of a
    ``train:``/``untrained:`` spec, the ``config.json`` of a run directory."""
    if spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)):
        return config_lib.load_config_file(spec.split(":", 1)[1])

    return restore.load_config(run_and_step("", spec)[0])


def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """``ARCHITECTURE_KEYS`` of a run config, JSON-normalised (tuples as lists; None where absent)."""
    out = {}
    for key in ARCHITECTURE_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value.get(part, None) if value is not None else None
        out[key] = json.loads(json.dumps(value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value))
    return out


def check_references(config: ml_collections.ConfigDict) -> None:
    """Every encoder shares ``ARCHITECTURE_KEYS`` with its untrained reference (``report.reference_of``),
    so eq. (1) compares it with the same encoder untrained; raises ValueError naming the key otherwise."""
    if report.is_raw(config):
        return
    arch = {
        name: architecture(encoder_config(spec))
        for name, spec in config.encoders.items()
        if not baselines.is_baseline(spec)
    }
    for name in arch:  # a feature baseline has no architecture to match
        reference = report.reference_of(config, name)
        for key in ARCHITECTURE_KEYS:
            mine, theirs = arch[name][key], arch[reference][key]
            if mine != theirs:
                raise ValueError(
                    f"config.encoders.{name}: {key}={mine!r}, but its untrained reference {reference!r} has "
                    f"{theirs!r}; add an untrained encoder of {name}'s config to config.encoders and map "
                    f"config.untrained_for.{name} to it"
                )


def plan(config: ml_collections.ConfigDict) -> list[Run]:
    """Every run of the protocol, in the order they execute (encoder-major).

    Every untrained reference (``report.references``) runs both arms whatever ``config.arms``
    says: its frozen arm is the zero of the normalisation, its fine-tuned arm (trained from
    scratch) the one. On the raw scale (``config.scale='raw'``) there are none.
    """
    references = report.references(config)
    return [
        Run(e, t, a, s, r)
        for e in report.encoder_order(config)
        for t in config.tasks.keys()
        for a in (report.ARMS if e in references else config.arms)
        for s in config.train_sets
        for r in range(config.replicas)
    ]


def replica_seed(config: ml_collections.ConfigDict, replica: int) -> int:
    return int(config.seed) + replica


def resolve_encoder(name: str, spec: str, workdir: pathlib.Path) -> pathlib.Path:
    """The run directory of encoder ``name``: given, or trained / saved untrained into ``workdir/encoders/name``."""
    if not spec.startswith((TRAIN_PREFIX, UNTRAINED_PREFIX)):
        return pathlib.Path(run_and_step(name, spec)[0])
    target = workdir / "encoders" / name
    prepare_encoder(name, encoder_config(spec), target, untrained=spec.startswith(UNTRAINED_PREFIX))
    return target


def prepare_encoder(name: str, config: ml_collections.ConfigDict, target: pathlib.Path, *, untrained: bool) -> None:
    """Trains ``config`` into ``target`` (resuming), or saves its random initialisation there once (``untrained``)."""
    config_lib.validate(config)
    if untrained:
        ckpt = checkpoint.Checkpointer(target, config)
        try:
            done = ckpt.latest_step() is not None
        finally:
            ckpt.close()
        if not done:
            logging.info("encoder %s: saving the untrained %s into %s", name, config.model.name, target)
            save_untrained.save_untrained(config, target)
    else:
        logging.info("encoder %s: training %s into %s (resumes)", name, config.model.name, target)
        trainer.train(config, target)


TASK_FORMAT = "name:key=value[,key=value...], e.g. birds:name=audio_folder,path=/data/birds,label_key=species"


def add_tasks(config: ml_collections.ConfigDict, specs: list[str]) -> None:
    """Adds each ``--task`` spec (``TASK_FORMAT``: data config keys of ``pipeline.default_data_config``,
    values typed as there) to ``config.tasks``; ValueError naming the spec and what to write otherwise."""

    defaults = pipeline.default_data_config()
    for spec in specs:
        name, _, body = spec.partition(":")
        if not name.isidentifier() or not body:
            raise ValueError(f"--task={spec!r}: write {TASK_FORMAT}")
        if name in config.tasks:
            raise ValueError(
                f"--task={spec!r}: config.tasks already has {name!r}; change its keys with "
                f"--config.tasks.{name}.<key>=<value>, or choose another name"
            )
        task = {}
        for item in body.split(","):
            key, eq, text = (part.strip() for part in item.partition("="))
            if not eq or key not in defaults:
                raise ValueError(
                    f"--task={spec!r}: {item!r} is not <key>=<value> with a data config key; "
                    f"use one of {sorted(defaults.keys())}"
                )
            task[key] = typed_value(text, defaults.get_type(key), f"--task={spec!r}: {key}")
        with config.unlocked():
            config.tasks[name] = task


def typed_value(text: str, kind: type, where: str) -> Any:
    """``text`` as a ``kind`` (bool: true/false; int; float; str)."""
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{where}={text!r}: write true or false")
        return text.lower() == "true"
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{where}={text!r}: not a {kind.__name__}") from None


def task_data_config(config: ml_collections.ConfigDict, task: str) -> ml_collections.ConfigDict:
    """The data config of ``task``: ``pipeline.default_data_config()`` updated with ``config.tasks[task]``."""

    data = pipeline.default_data_config()
    for key, value in config.tasks[task].items():
        if key not in data:
            raise ValueError(f"config.tasks.{task}.{key}: not a data config key; use one of {sorted(data.keys())}")
        data[key] = value
    return data


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

    def step(self, name: str) -> int:
        """The checkpoint step encoder ``name`` is read at: its spec's ``@<step>``, else the latest;
        ValueError naming the encoder and the steps its run holds when that step is not there."""
        if name not in self._steps:
            enc_dir = self.encoder_dir(name)
            _, step = run_and_step(name, self.config.encoders[name])
            if step is None:
                step = restore.latest_step(enc_dir)
            elif step not in (held := restore.checkpoint_steps(enc_dir)):
                raise ValueError(
                    f"config.encoders.{name}={self.config.encoders[name]!r}: {enc_dir} holds checkpoints of "
                    f"steps {held}, not {step}; name one of them (the run keeps checkpoint.max_to_keep)"
                )
            self._steps[name] = step
        return self._steps[name]

    def info(self, task: str, split: str) -> Any:

        if (task, split) not in self._info:
            self._info[task, split] = registry.get_dataset_info(task_data_config(self.config, task), split)
        return self._info[task, split]

    def num_classes(self, task: str) -> tuple[int, bool]:
        data = task_data_config(self.config, task)
        info = self.info(task, data.train_split)
        if info.num_classes < 2:
            raise ValueError(
                f"config.tasks.{task}: dataset {data.name!r} split {data.train_split!r} has "
                f"{info.num_classes} classes; a downstream task needs labelled data "
                "(set data.label_key to a labelled column)"
            )
        return info.num_classes, info.multi_label

    def embeddings(self, encoder: str, task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Scene embeddings [N, D] of ``split`` and ``task``'s labels; the embeddings are cached in
        workdir/embeddings/<encoder>/step<step>/<audio fingerprint>/<split>.npz, shared by every task
        that reads the same audio (``embeddings.cached_scene_embeddings``: label columns of one folder)."""

        data = task_data_config(self.config, task)
        spec = self.config.encoders[encoder]
        if baselines.is_baseline(spec):
            baseline = baselines.make(spec)
            data.sample_rate = int(baseline.frontend.sample_rate)
            return embeddings.cached_scene_embeddings(
                self.workdir / "embeddings" / encoder / spec[len(baselines.PREFIX) :],
                data,
                split,
                encoder=lambda: (baseline, {}),
                batch_size=int(self.config.embed_batch_size),
                progress=embeddings.ProgressLog(f"embedding {task}:{split} with {encoder}"),
            )
        enc_dir = self.encoder_dir(encoder)
        step = self.step(encoder)

        def load() -> tuple[Any, Any]:
            if self._loaded is None or self._loaded[0] != encoder:
                self._loaded = (encoder, *embeddings.load_encoder(enc_dir, step))
            return self._loaded[1], self._loaded[2]

        data.sample_rate = int(restore.load_config(enc_dir).frontend.sample_rate)
        return embeddings.cached_scene_embeddings(
            self.workdir / "embeddings" / encoder / f"step{step}",
            data,
            split,
            encoder=load,
            batch_size=int(self.config.embed_batch_size),
            progress=embeddings.ProgressLog(f"embedding {task}:{split} with {encoder}"),
        )

    def run_data_config(self, run: Run) -> ml_collections.ConfigDict:
        """The task's data config with the run's training set: the ``subset`` arm trains on
        ``n_train`` examples drawn by the replica's seed (``data.train_size``, ``subset_seed``),
        the same for every encoder."""
        data = task_data_config(self.config, run.task)
        if run.train_set == "subset":
            data.train_size, data.subset_seed = int(self.config.n_train), replica_seed(self.config, run.replica)
        return data

    def frozen(self, run: Run) -> tuple[str, float, int]:

        data = self.run_data_config(run)
        num_classes, multi_label = self.num_classes(run.task)
        x, y = self.embeddings(run.encoder, run.task, data.train_split)
        test = self.embeddings(run.encoder, run.task, data.eval_split)
        keep = pipeline.train_examples(data, len(y))
        if keep is not None:
            x, y = x[keep], y[keep]
        result = linear.linear_eval(
            (x, y),
            test,
            num_classes=num_classes,
            multi_label=multi_label,
            val_fraction=float(self.config.linear.val_fraction),
            seed=replica_seed(self.config, run.replica),
        )
        metric = "mAP" if multi_label else "accuracy"
        return metric, float(result[metric]), len(y)

    def classifier_config(self, run: Run) -> ml_collections.ConfigDict:
        """The fine-tuning config of ``run``'s encoder on its task, data and replica seed."""

        enc_dir = self.encoder_dir(run.encoder)
        num_classes, multi_label = self.num_classes(run.task)
        c = restore.local_config(
            config_lib.finetune_config_from(
                restore.load_config(enc_dir), str(enc_dir), num_classes=num_classes, multi_label=multi_label
            )
        )
        c.task.pretrained_step = self.step(run.encoder)
        c.data = self.run_data_config(run)
        c.data.sample_rate = int(c.frontend.sample_rate)
        c.seed = replica_seed(self.config, run.replica)
        return c

    def num_train(self, c: ml_collections.ConfigDict, task: str) -> int:

        num_examples = self.info(task, c.data.train_split).num_examples
        return subset.subset_size(num_examples, c.data.train_fraction, c.data.train_size) or num_examples

    def run_dir(self, run: Run) -> pathlib.Path:
        arm = "" if run.arm == "finetuned" else "frozen_"
        return self.workdir / f"{arm}finetune" / run.encoder / run.task / run.train_set / f"replica{run.replica}"

    def finetune_config(self, run: Run) -> ml_collections.ConfigDict:
        """The validated config of ``run``'s fine-tuned arm: ``classifier_config`` with ``config.finetune``'s
        steps, batch, rate, class balancing, consistency loss and output dropout."""
        f = self.config.finetune
        c = self.classifier_config(run)
        c.data.class_balanced = bool(f.class_balanced)
        c.total_steps, c.batch_size = int(f.total_steps), int(f.batch_size)
        c.log_every_steps = max(1, min(int(f.log_every_steps), c.total_steps))
        c.checkpoint.every_steps, c.checkpoint.asynchronous = c.total_steps, False
        c.schedule.peak_learning_rate = float(f.peak_learning_rate)
        c.task.consistency, c.task.output_dropout = bool(f.consistency), float(f.output_dropout)
        config_lib.validate(c)
        return c

    def finetuned(self, run: Run) -> tuple[str, float, int]:

        if baselines.is_baseline(self.config.encoders[run.encoder]):
            return self.frozen(run)  # fixed features: the linear probe is all there is to train
        c = self.finetune_config(run)
        result = finetune.run(c, self.run_dir(run))
        metric = "mAP" if c.task.multi_label else "accuracy"
        return metric, float(result[metric]), self.num_train(c, run.task)

    def sliced(self, run: Run) -> tuple[str, float, float, int]:
        """The paper's recipe: train on random slices (frozen: the linear layer only; fine-tuned:
        everything) with constant-rate Adam, then ``slices.evaluate_slices`` on the test split."""

        sl = self.config.slices
        c = self.classifier_config(run)
        if c.task.multi_label:
            raise ValueError(
                f"config.tasks.{run.task}: a multi-label task; the slice recipe scores single-label "
                "accuracy (use config.recipe='clips')"
            )
        clip_seconds = float(c.data.crop_seconds)
        c.data.crop_seconds = float(sl.seconds)  # the pipeline's random crop is the random slice
        c.task.update(
            dict(
                freeze_encoder=run.arm == "frozen",
                jitter_samples=0,
                time_mask_max_fraction=0.0,
                mixup=False,
                consistency=False,
                output_dropout=0.0,
            )
        )
        c.optimizer.update(dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip_norm=0.0))  # Adam defaults
        c.schedule = ml_collections.ConfigDict(
            dict(
                name="warmup_linear_decay", warmup_steps=0, final_scale=1.0, peak_learning_rate=float(sl.learning_rate)
            )
        )
        c.total_steps, c.batch_size = int(sl.total_steps), int(sl.batch_size)
        c.log_every_steps = max(1, min(int(sl.log_every_steps), c.total_steps))
        c.checkpoint.every_steps, c.checkpoint.asynchronous = c.total_steps, False
        config_lib.validate(c)
        run_dir = self.run_dir(run)
        task = ClassificationTask(c)
        state = trainer.train(c, run_dir, task=task)
        eval_data = ml_collections.ConfigDict(c.data.to_dict())
        eval_data.crop_seconds = clip_seconds  # whole clips (up to the task's crop), sliced at random
        result = slices.evaluate_slices(
            task,
            {"params": state.params, **state.model_state},
            eval_data,
            c.data.eval_split,
            slice_seconds=float(sl.seconds),
            per_clip=int(sl.per_clip),
            seed=replica_seed(self.config, run.replica),
            batch_size=c.batch_size,
            mesh=sharding.make_mesh(c.mesh.data, c.mesh.model),
        )
        (run_dir / f"eval_slices_{c.data.eval_split.replace('/', '_')}.json").write_text(json.dumps(result, indent=2))
        return "accuracy", result["accuracy"], result["clip_accuracy"], self.num_train(c, run.task)


def result_row(
    config: ml_collections.ConfigDict,
    run: Run,
    metric: str,
    score: float,
    clip_score: float,
    num_train: int,
    seconds: float,
) -> dict[str, Any]:
    """The ``results.csv`` row (``report.FIELDS``) of a finished run."""
    return dict(
        encoder=run.encoder,
        task=run.task,
        arm=run.arm,
        train_set=run.train_set,
        replica=run.replica,
        seed=replica_seed(config, run.replica),
        num_train=num_train,
        metric=metric,
        score=f"{score:.6f}",
        clip_score=f"{clip_score:.6f}",
        seconds=f"{seconds:.2f}",
    )


def run(
    config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, max_runs: int | None = None
) -> list[dict[str, Any]]:
    """Runs the missing cells of the protocol (at most ``max_runs`` of them), then writes the reports.

    Returns the sections of ``report.summarise``.
    """
    validate(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "protocol_config.json").write_text(config.to_json_best_effort(indent=2))
    csv_path = workdir / report.CSV_FILE
    done = {(r["encoder"], r["task"], r["arm"], r["train_set"], r["replica"]) for r in report.read_results(csv_path)}
    runs = plan(config)
    todo = [r for r in runs if r.key() not in done]
    if max_runs is not None:
        todo = todo[:max_runs]
    finished = sum(r.key() in done for r in runs)
    logging.info("protocol: %d runs in all, %d already in %s, running %d now", len(runs), finished, csv_path, len(todo))
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
        report.append_result(csv_path, result_row(config, r, metric, score, clip_score, num_train, seconds))
        eta = (time.perf_counter() - start) / i * (len(todo) - i)
        logging.info(
            "[%d/%d] %s | %s | %s | %s | replica %d: %s %.4f (clip %.4f) on %d training examples (%.1f s, ETA %.0f s)",
            i,
            len(todo),
            r.encoder,
            r.task,
            r.arm,
            r.train_set,
            r.replica,
            metric,
            score,
            clip_score,
            num_train,
            seconds,
            eta,
        )
    sections = report.write_reports(config, workdir)
    logging.info(
        "wrote %s, %s, %s and %s in %s",
        report.CSV_FILE,
        report.TABLE_FILE,
        report.FIGURE_FILE,
        report.SUMMARY_FILE,
        workdir,
    )
    return sections


def main(argv: list[str]) -> None:
    """Command entry point; shows this package's INFO lines only (``logs.show_own_info``)."""
    from absl import flags

    cli.start(argv)
    with cli.user_errors(registry.DatasetError, FileNotFoundError, ValueError):
        add_tasks(flags.FLAGS.config, flags.FLAGS.task)
        run(flags.FLAGS.config, flags.FLAGS.workdir, max_runs=flags.FLAGS.max_runs)
    print((pathlib.Path(flags.FLAGS.workdir) / report.TABLE_FILE).read_text())


if __name__ == "__main__":
    cli.define_config("Protocol config file, e.g. configs/eval_protocol.py:demo.")
    cli.define_workdir("Directory for the encoders, runs, results.csv and the reports.")
    flags.DEFINE_integer("max_runs", None, "Stop after this many new runs (the rest run on the next call).")
    flags.DEFINE_multi_string("task", [], f"A task added to config.tasks: {TASK_FORMAT}. Repeatable.")
    app.run(main)

"""Building blocks of the ml_collections experiment configs, their validation, and the loader of config files.

The recipes themselves (the papers' numbers) are the config files under ``configs/``, which
build on these functions; one config file states another's recipe by loading it
(``load_config_file``) and setting the keys that differ. No number a paper table depends
on is a hidden default in the code.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib

import ml_collections
from absl import logging
from ml_collections import config_dict

from audiossl_jax import frontend
from audiossl_jax.data import subset
from audiossl_jax.models.classifier import POOLINGS

COMPUTE_DTYPES = ("float32", "bfloat16")

# The checkout holding this package and configs/: paths in shipped configs are relative to it.
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def repo_path(relative: str) -> str:
    """``relative`` (e.g. ``configs/pretrain_cfS.py`` or ``../shared/data/fsdd``) as an absolute path
    under the repository root, so that a shipped config means the same files from any working directory."""
    return os.path.normpath(REPO_ROOT / relative)


# The shipped config files; a bare file name given to ``load_config_file`` is one of them.
CONFIGS_DIR = REPO_ROOT / "configs"


def config_file_path(path: str) -> pathlib.Path:
    """The file a config name means: a bare file name (``pretrain_cfS.py``) is ``CONFIGS_DIR/<name>``,
    any other path (``configs/x.py``, ``/abs/x.py``, ``./x.py``) is read as given."""
    if "/" in path or os.sep in path:
        return pathlib.Path(path)
    if not CONFIGS_DIR.is_dir():
        raise FileNotFoundError(
            f"config {path!r} names a shipped config file, but {CONFIGS_DIR} does not exist: this audiossl_jax "
            "is installed without its checkout (e.g. from a wheel). Install it from a clone of the repository "
            "(pip install -e <clone>), or give the config file's path."
        )
    return CONFIGS_DIR / path


def load_config_file(spec: str, **kwargs: object) -> ml_collections.ConfigDict:
    """``name_or_path.py[:variant]`` -> the file's ``get_config(variant, **kwargs)``.

    ``pretrain_cfS.py:smoke`` is a shipped config (``config_file_path``); a path is read as
    given, relative to the working directory. ``kwargs`` reach the file's own keyword
    arguments (``eval_finetune_cfL.py`` passes cf_L's pre-training file to cf_S's recipe).
    """
    path, _, variant = spec.partition(":")
    file = config_file_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} (from {spec!r}) not found; paths are relative to {os.getcwd()}")
    module_spec = importlib.util.spec_from_file_location(f"_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(variant, **kwargs)


# task.num_negatives above this many times the distinct distractors of a full crop is warned about.
NEGATIVES_WARN_FACTOR = 4


def trainer_config() -> ml_collections.ConfigDict:
    """Keys every run has: seed, steps, batch, mesh, optimizer, schedule, checkpoints, logging."""
    c = ml_collections.ConfigDict()
    c.mode = "pretrain"
    c.seed = 0
    c.total_steps = 1000
    c.batch_size = 16
    c.compute_dtype = "float32"
    c.log_every_steps = 100

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.model = 1
    c.mesh.rules = ()
    # Sharding strategy: data parallel (model=1, fsdp=False), FSDP (fsdp=True: every
    # parameter of >= fsdp_min_size elements and its optimizer state split over "data"),
    # tensor parallel (model > 1: "mlp" and "heads" split over "model"), or both.
    c.mesh.fsdp = False
    c.mesh.fsdp_min_size = 2**16

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.98
    c.optimizer.eps = 1e-6
    c.optimizer.weight_decay = 0.01
    c.optimizer.grad_clip_norm = 10.0

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "warmup_linear_decay"
    c.schedule.warmup_steps = 100
    c.schedule.peak_learning_rate = 3e-4
    c.schedule.final_scale = 0.0

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 1000
    c.checkpoint.max_to_keep = 3
    c.checkpoint.asynchronous = True
    return c


def require(ok: bool, key: str, value: object, what: str) -> None:
    """Raises ValueError naming ``config.<key>=<value>`` and what to do, unless ``ok``."""
    if not ok:
        raise ValueError(f"config.{key}={value!r}: {what}")


def validate_conformer(m: ml_collections.ConfigDict) -> None:
    """Checks the conformer keys of ``config.model`` (pre-training and fine-tuning alike)."""
    require(
        "latent_dim" in m,
        "model",
        sorted(m.keys()),
        "has no latent_dim: the run was written by an older code version whose layout (a target projection, "
        "latents of width model_dim) this code no longer builds; train it anew, or use that code version.",
    )
    require(m.stack >= 1, "model.stack", m.stack, "must be >= 1.")
    require(m.latent_dim >= 1, "model.latent_dim", m.latent_dim, "must be >= 1.")
    require(m.num_blocks >= 1, "model.num_blocks", m.num_blocks, "must be >= 1.")
    require(
        m.model_dim % m.num_heads == 0,
        "model.num_heads",
        m.num_heads,
        f"must divide config.model.model_dim={m.model_dim}.",
    )
    for key in ("first_kernel_size", "kernel_size"):
        require(m[key] >= 1 and m[key] % 2 == 1, f"model.{key}", m[key], "must be a positive odd number.")
    for key in ("dropout", "feature_dropout"):
        require(0 <= m[key] < 1, f"model.{key}", m[key], "must lie in [0, 1).")


def validate_data(c: ml_collections.ConfigDict) -> None:
    """Data keys that would otherwise be ignored or contradict the frontend."""
    d = c.data
    if d.get("path", None):
        require(
            d.name == "audio_folder",
            "data.path",
            d.path,
            f"is read only by data.name='audio_folder' (data.name={d.name!r} would train on its own data); "
            "add --config.data.name=audio_folder, or drop data.path.",
        )
    if "frontend" in c and "sample_rate" in c.frontend and "sample_rate" in d:
        require(
            d.sample_rate == c.frontend.sample_rate,
            "data.sample_rate",
            d.sample_rate,
            f"differs from config.frontend.sample_rate={c.frontend.sample_rate}; the frontend would read the "
            "audio at the wrong rate. Set both to the same value.",
        )
    if "optimizer" in c and "grad_clip_norm" in c.optimizer:
        require(
            c.optimizer.grad_clip_norm >= 0,
            "optimizer.grad_clip_norm",
            c.optimizer.grad_clip_norm,
            "must be >= 0 (0: no clipping); a negative norm would ascend the gradient.",
        )


def warn_negatives(c: ml_collections.ConfigDict, latent_steps: int) -> str | None:
    """Warns (and returns the message) when task.num_negatives is far above the distinct
    distractors of a full crop: round(mask_prob * latent_steps) - 1."""
    t = c.task
    distinct = max(round(t.mask_prob * latent_steps) - 1, 0)
    if t.num_negatives <= NEGATIVES_WARN_FACTOR * distinct:
        return None
    message = (
        f"config.task.num_negatives={t.num_negatives} is far above the {distinct} distinct distractors a "
        f"{c.data.crop_seconds} s crop offers ({latent_steps} latent steps, {distinct + 1} masked): they are "
        "drawn with replacement, so most are repeats. Use longer crops or fewer negatives."
    )
    logging.warning("%s", message)
    return message


def validate(c: ml_collections.ConfigDict) -> None:
    """Rejects inconsistent or out-of-range values with an error naming the key."""
    require(c.mode in ("pretrain", "finetune"), "mode", c.mode, "use 'pretrain' or 'finetune'.")
    subset.check(c.data.get("train_fraction", 1.0), c.data.get("train_size", 0))
    validate_data(c)
    if c.mode == "finetune":
        validate_finetune(c)
        return
    require(c.total_steps > 0, "total_steps", c.total_steps, "must be positive.")
    require(c.batch_size > 0, "batch_size", c.batch_size, "must be positive.")
    require(c.log_every_steps > 0, "log_every_steps", c.log_every_steps, "must be positive.")
    require(c.compute_dtype in COMPUTE_DTYPES, "compute_dtype", c.compute_dtype, f"use one of {COMPUTE_DTYPES}.")
    require(
        c.mesh.get("fsdp_min_size", 0) >= 0,
        "mesh.fsdp_min_size",
        c.mesh.get("fsdp_min_size", 0),
        "must be >= 0 (parameters with fewer elements stay replicated under FSDP).",
    )
    require(c.checkpoint.every_steps > 0, "checkpoint.every_steps", c.checkpoint.every_steps, "must be positive.")
    require(c.checkpoint.max_to_keep > 0, "checkpoint.max_to_keep", c.checkpoint.max_to_keep, "must be positive.")
    require(c.optimizer.weight_decay >= 0, "optimizer.weight_decay", c.optimizer.weight_decay, "must be >= 0.")
    require(
        c.schedule.peak_learning_rate > 0, "schedule.peak_learning_rate", c.schedule.peak_learning_rate, "must be > 0."
    )
    require(c.data.crop_seconds > 0, "data.crop_seconds", c.data.crop_seconds, "must be positive.")
    fe = frontend.FrontendConfig.from_config(c.frontend)
    if "model" in c and "task" in c and c.task.name == "wav2vec2":
        m, t = c.model, c.task
        require(0 < t.mask_prob < 1, "task.mask_prob", t.mask_prob, "must lie in (0, 1).")
        require(t.mask_span >= 1, "task.mask_span", t.mask_span, "must be >= 1.")
        require(t.num_negatives >= 1, "task.num_negatives", t.num_negatives, "must be >= 1.")
        require(t.temperature > 0, "task.temperature", t.temperature, "must be > 0.")
        validate_conformer(m)
        steps = frontend.crop_frames(c.data.crop_seconds, fe) // m.stack
        require(
            math.ceil(t.mask_prob * steps) >= 2,
            "data.crop_seconds",
            c.data.crop_seconds,
            f"gives {steps} latent steps, too few to mask two of them; use longer crops.",
        )
        warn_negatives(c, steps)


def validate_finetune(c: ml_collections.ConfigDict) -> None:
    """Checks a fine-tuning config (mode 'finetune'); errors name the key."""

    def check(ok: bool, key: str, what: str) -> None:
        if not ok:
            value = c
            for part in key.split("."):
                value = value[part]
            require(ok, key, value, what)

    t, m = c.task, c.model
    cnn = is_cnn(c)
    check(c.mode == "finetune", "mode", "a classification config runs in mode 'finetune'.")
    check(t.name == "classification", "task.name", "must be 'classification'.")
    check(t.num_classes >= 2, "task.num_classes", "must be >= 2.")
    check(t.jitter_samples >= 0, "task.jitter_samples", "must be >= 0.")
    check(0 <= t.time_mask_max_fraction < 1, "task.time_mask_max_fraction", "must lie in [0, 1).")
    check(t.mixup_beta > 0, "task.mixup_beta", "must be > 0.")
    check(t.consistency_weight >= 0, "task.consistency_weight", "must be >= 0.")
    check(0 <= t.output_dropout < 1, "task.output_dropout", "must lie in [0, 1).")
    check(0 < t.pool_eps < 0.5, "task.pool_eps", "must lie in (0, 0.5).")
    if t.get("pooling") not in POOLINGS:
        raise ValueError(
            f"config.task.pooling={t.get('pooling')!r}: must be one of {POOLINGS} "
            "('linear_softmax': the paper's AudioSet head; 'mean': its head of every other task)."
        )
    check(
        t.multi_label or t.pooling != "linear_softmax",
        "task.pooling",
        "pools frame-level sigmoid probabilities, so it needs config.task.multi_label=True; "
        "single-label tasks use 'mean'.",
    )
    if t.get("freeze_encoder", False):
        check(
            c.optimizer.weight_decay == 0,
            "optimizer.weight_decay",
            "must be 0 with config.task.freeze_encoder=True (decay would move the frozen encoder).",
        )
    if cnn:
        if int(t.get("slice_frames", 0)) < 1:
            raise ValueError(
                f"config.task.slice_frames={t.get('slice_frames')!r}: a CNN encoder "
                "(config.model.channels) needs the pretext run's slice length (>= 1)."
            )
        crop_frames = frontend.crop_frames(c.data.crop_seconds, frontend.FrontendConfig.from_config(c.frontend))
        check(
            crop_frames >= t.slice_frames,
            "data.crop_seconds",
            f"gives {crop_frames} frames, fewer than one slice (config.task.slice_frames={t.slice_frames}).",
        )
    else:
        validate_conformer(m)
    check(c.batch_size > 0 and c.total_steps > 0, "batch_size", "batch_size and total_steps must be positive.")


def is_cnn(config: ml_collections.ConfigDict) -> bool:
    """Whether ``config.model`` is the CNN encoder (it has ``channels``) rather than the conformer."""
    return "channels" in config.model


CONFORMER_TASKS = ("wav2vec2", "classification")


def classification_task(num_classes: int, multi_label: bool, pooling: str = "mean") -> ml_collections.ConfigDict:
    """The ``config.task`` of fine-tuning: head, augmentation, consistency loss, checkpoint to load.

    The paper's recipe for "all downstream tasks": jitter of up to 200 samples, one time
    mask of up to 2 s per 10 s, mixup Beta(0.5, 0.5), and the consistency loss (symmetric
    KL x 2). ``pooling``: 'mean' (every task but AudioSet) or 'linear_softmax' (AudioSet).
    """
    t = ml_collections.ConfigDict(
        dict(
            name="classification",
            num_classes=num_classes,
            multi_label=multi_label,
            pooling=pooling,
            jitter_samples=200,
            time_mask_max_fraction=0.2,
            mixup=True,
            mixup_beta=0.5,
            consistency=True,
            consistency_weight=2.0,
            output_dropout=0.0,
            pool_eps=1e-6,
            freeze_encoder=False,
        )
    )
    t.pretrained_workdir = config_dict.placeholder(str)
    t.pretrained_step = config_dict.placeholder(int)
    return t


def tri_stage_schedule(peak_learning_rate: float) -> ml_collections.ConfigDict:
    """Tri-stage LR: 30% warm-up from 1% of the peak, 30% hold, 40% exponential decay to 5%."""
    return ml_collections.ConfigDict(
        dict(
            name="tri_stage",
            peak_learning_rate=peak_learning_rate,
            warmup_fraction=0.3,
            hold_fraction=0.3,
            decay_fraction=0.4,
            init_scale=0.01,
            final_scale=0.05,
        )
    )


def finetune_config_from(
    encoder_config: ml_collections.ConfigDict, workdir: str, *, num_classes: int, multi_label: bool
) -> ml_collections.ConfigDict:
    """Fine-tuning of the encoder of the run in ``workdir`` (its stored ``encoder_config``).

    Keeps the run's frontend and model keys (so its checkpoint loads), sets mode
    'finetune', the classification task with ``task.pretrained_workdir=workdir`` and the
    tri-stage schedule at the run's peak rate. Data, steps and batch size are the
    caller's to set. Conformer runs (task 'wav2vec2' or 'classification') and CNN runs
    (any pretext task of Tagliasacchi et al.: ``model.channels``; their
    ``task.slice_frames`` is kept) fine-tune.
    """
    task = encoder_config.task.name
    cnn = is_cnn(encoder_config)
    if not cnn and task not in CONFORMER_TASKS:
        raise ValueError(
            f"{workdir}: task.name={task!r} with no config.model.channels is neither a conformer run "
            f"(task.name in {CONFORMER_TASKS}) nor a CNN run; it cannot be fine-tuned."
        )
    c = ml_collections.ConfigDict(encoder_config.to_dict())
    c.mode = "finetune"
    if not c.model.name.endswith("finetune"):
        c.model.name = c.model.name.replace("wav2vec2", "finetune") if not cnn else f"{c.model.name}_finetune"
    c.schedule = tri_stage_schedule(float(encoder_config.schedule.peak_learning_rate))
    previous = encoder_config.task if task == "classification" else {}
    c.task = classification_task(num_classes, multi_label)
    if cnn:
        c.task.slice_frames = int(encoder_config.task.slice_frames)
    for key in (
        "jitter_samples",
        "time_mask_max_fraction",
        "mixup",
        "mixup_beta",
        "consistency",
        "consistency_weight",
        "output_dropout",
        "pool_eps",
    ):
        if key in previous:
            c.task[key] = previous[key]
    c.task.pretrained_workdir = str(workdir)
    add_best_checkpoint_keys(c)
    return c


def add_best_checkpoint_keys(c: ml_collections.ConfigDict) -> None:
    """``config.checkpoint.best_split``: the split that picks the best checkpoint (None: the
    dataset's 'validation' split when it has one, else no selection)."""
    if "best_split" not in c.checkpoint:
        c.checkpoint.best_split = config_dict.placeholder(str)

"""One trainer for every task: sharded state, a jitted train step, the loop around it.

The path of a batch: the host pipeline yields per-host numpy rows, ``global_batch``
assembles them into jax.Arrays split over the mesh's ``data`` axis, and the jitted
``train_step`` (explicit in/out shardings, donated state) runs the task's loss (which
computes logmels on the device), takes gradients and applies the optax update.

Parameters and optimizer state are float32; ``config.compute_dtype='bfloat16'`` runs
the model's matmuls and activations in bfloat16 while the frontend and the loss stay
float32. SIGTERM (a preempted VM, a SLURM time limit) or Ctrl-C (SIGINT) stops the loop
at the next step boundary with a checkpoint of that step (``Preempted``); a rerun
resumes from it. A non-finite loss, gradient norm or updated parameter stops the run
before that state can be saved (``NonFiniteLossError``). Process 0 holds the workdir's
lock (``train.workdir``) for the length of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from audiossl_jax import tasks
from audiossl_jax.data import pipeline, registry
from audiossl_jax.tasks.base import Batch, Task
from audiossl_jax.train import checkpoint, optim, restore, sharding
from audiossl_jax.train import workdir as workdir_lib

Array = jax.Array


class TrainState(flax.struct.PyTreeNode):
    """Everything needed to continue a run exactly (besides the input position)."""

    step: Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: Array


class NonFiniteLossError(RuntimeError):
    """The loss, the gradient norm or the updated parameters became NaN or Inf; the run
    stops before saving that state and keeps its last good checkpoint."""


class Preempted(Exception):
    """SIGTERM or Ctrl-C arrived; the state at ``step`` is saved and a rerun resumes from it."""

    def __init__(self, step: int, directory: Any, signal_name: str = "SIGTERM"):
        super().__init__(
            f"preempted ({signal_name}): saved a checkpoint at step {step} in {directory}; "
            "rerun the same command to resume."
        )
        self.step = step


class PreemptionWatch:
    """Turns SIGTERM and Ctrl-C (SIGINT) into a stop at a step boundary that every process agrees on.

    One process: a handler of both signals sets a flag that ``should_stop`` reports; a
    second Ctrl-C stops at once without saving (KeyboardInterrupt). Several processes:
    JAX's preemption service (started by ``jax.distributed.initialize``) catches the
    notice on any host and ``reached_preemption_sync_point`` picks the same step on all
    of them. Use as a context manager around the loop.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = "SIGTERM"
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        logging.warning(
            "%s received: saving a checkpoint after this step (Ctrl-C again stops without saving)", self.signal_name
        )

    def __enter__(self) -> PreemptionWatch:
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested


@dataclasses.dataclass
class Setup:
    """A task's model placed on a mesh: shardings, the initial state and the step."""

    task: Task
    mesh: Mesh
    state_sharding: Any
    abstract_state: Any
    init_fn: Callable[[], TrainState]
    train_step: Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]
    schedule: optax.Schedule


def init_variables(task: Task, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The task's initial variables (boxed with logical axis names), drawn from ``config.seed``: what
    every run of ``config`` starts from (``save_untrained`` saves them, ``--untrained`` embeds with them)."""
    rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    return task.init(rng, pipeline.example_batch(config, 1))


def _split_variables(variables: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    variables = dict(variables)
    return variables.pop("params"), variables


def setup(config: ml_collections.ConfigDict, mesh: Mesh, task: Task | None = None) -> Setup:
    """The state's shardings on ``mesh`` and the jitted functions of ``task`` (default: the one
    ``config.task`` names)."""
    task = tasks.get_task(config) if task is None else task
    rules = sharding.logical_rules(config)
    tx, schedule = optim.make_optimizer(config)

    def boxed_init() -> TrainState:
        rng = jax.random.PRNGKey(config.seed)
        params, model_state = _split_variables(init_variables(task, config))
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=model_state,
            opt_state=tx.init(params),
            rng=jax.random.fold_in(rng, 2),
        )

    abstract_boxed = jax.eval_shape(boxed_init)
    fsdp_min_size = int(config.mesh.fsdp_min_size) if config.mesh.get("fsdp", False) else None
    state_sharding = sharding.tree_shardings(abstract_boxed, mesh, rules, fsdp_min_size=fsdp_min_size)
    abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        nn.unbox(abstract_boxed),
        state_sharding,
    )
    init_fn = jax.jit(lambda: nn.unbox(boxed_init()), out_shardings=state_sharding)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params: Any) -> tuple[Array, tuple[dict[str, Array], dict[str, Any]]]:
            return task.loss({"params": params, **state.model_state}, batch, rng, train=True)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (metrics, new_model_state)), grads = grad_fn(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]).all()
        metrics = dict(
            metrics,
            grad_norm=optax.global_norm(grads),
            learning_rate=schedule(state.step),
            params_finite=finite.astype(jnp.float32),
        )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            opt_state=opt_state,
            model_state={**state.model_state, **new_model_state},
        )
        return new_state, metrics

    batch_shardings = {k: sharding.batch_sharding(mesh) for k in pipeline.example_batch(config, 1)}
    jitted_step = jax.jit(
        train_step,
        in_shardings=(state_sharding, batch_shardings),
        out_shardings=(state_sharding, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
    return Setup(task, mesh, state_sharding, abstract_state, init_fn, jitted_step, schedule)


def parameter_table(params: Any, depth: int = 2) -> list[tuple[str, int]]:
    """(module path, parameter count) rows down to ``depth`` levels, total first."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    rows: dict[str, int] = {}
    total = 0
    for path, leaf in flat:
        names = [str(getattr(k, "key", k)) for k in path]
        size = int(math.prod(leaf.shape))
        total += size
        for d in range(1, min(depth, len(names) - 1) + 1):
            key = "/".join(names[:d])
            rows[key] = rows.get(key, 0) + size
    return [("total", total)] + sorted(rows.items(), key=lambda kv: _natural_key(kv[0]))


def _natural_key(name: str) -> list[Any]:
    parts: list[Any] = []
    for piece in name.replace("/", " / ").split():
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append((piece.rstrip("0123456789"), int(digits) if digits else -1))
    return parts


def format_parameter_table(rows: list[tuple[str, int]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {count:>13,}" for name, count in rows)


def _format_eta(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class MetricAverager:
    """Running means of per-step scalar metrics on the host."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def _check_finite(step: int, metrics: dict[str, float], ckpt: checkpoint.Checkpointer) -> None:
    """Raises NonFiniteLossError when the loss, the gradient norm or an updated parameter of ``step``
    is NaN/Inf; pops ``params_finite`` (not a metric to average)."""
    loss, grad_norm = metrics["loss"], metrics.get("grad_norm", 0.0)
    params_finite = metrics.pop("params_finite", 1.0) == 1.0
    if not (math.isfinite(loss) and math.isfinite(grad_norm) and params_finite):
        last = ckpt.latest_step()
        kept = f"the last good checkpoint (step {last})" if last is not None else "no checkpoint (none was saved yet)"
        what = (
            f"loss is {loss}"
            if not math.isfinite(loss)
            else f"gradient norm is {grad_norm}"
            if not math.isfinite(grad_norm)
            else "the updated parameters hold NaN/Inf"
        )
        raise NonFiniteLossError(
            f"{what} at step {step}; stopping before saving it. The workdir keeps {kept}. Lower "
            "config.schedule.peak_learning_rate, set config.optimizer.grad_clip_norm, or use float32 compute "
            "(config.compute_dtype='float32'), then rerun to resume."
        )


def progress_line(step: int, total: int, means: Mapping[str, float]) -> str:
    """The progress log line: step, loss, accuracy (tasks that report one), speed, ETA."""
    acc = f" | acc {means['accuracy']:.3f}" if "accuracy" in means else ""
    sec = means["sec_per_step"]
    return (
        f"step {step}/{total} | loss {means['loss']:.4f}{acc} | {means['examples_per_sec']:.1f} examples/s"
        f" | {sec:.3f} s/step | ETA {_format_eta((total - step) * sec)}"
    )


LABELLED_TASKS = ("supervised", "classification")


def _log_and_check_data(config: ml_collections.ConfigDict) -> None:
    """Logs the dataset's name and split sizes; refuses unlabelled training examples for labelled tasks.

    Fails within seconds, before the model is built, when the dataset is not prepared.
    """
    d = config.data
    info = registry.get_dataset_info(d, d.train_split)
    sizes = [f"{d.train_split!r} {info.num_examples} examples"]
    if d.eval_split != d.train_split:
        try:
            sizes.append(f"{d.eval_split!r} {registry.get_dataset_info(d, d.eval_split).num_examples} examples")
        except registry.DatasetError as e:
            sizes.append(f"{d.eval_split!r} not available ({e})")
    where = f" ({d.path})" if d.get("path", None) else ""
    logging.info("dataset %s%s: %s", info.name, where, "; ".join(sizes))
    if config.task.name in LABELLED_TASKS and info.num_unlabelled:
        raise registry.DatasetError(
            f"dataset {info.name!r}{where} split {d.train_split!r}: {info.num_unlabelled} of {info.num_examples} "
            f"examples have no label (empty {d.get('label_key', 'label')!r} cell), and task {config.task.name!r} "
            "trains on labels; label them, or choose a split without them (config.data.train_split)."
        )


def _lock(workdir: epath.Path) -> workdir_lib.WorkdirLock | None:
    """Process 0 takes the workdir's lock; every process raises WorkdirLockedError when it is held."""
    lock, error = None, None
    if jax.process_index() == 0:
        lock = workdir_lib.WorkdirLock(workdir)
        try:
            lock.acquire()
        except workdir_lib.WorkdirLockedError as e:
            lock, error = None, e
    if jax.process_count() > 1:
        ok = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not ok and error is None:
            error = workdir_lib.WorkdirLockedError(f"workdir {workdir} is in use by another run (see process 0)")
    if error is not None:
        raise error
    return lock


def train(
    config: ml_collections.ConfigDict,
    workdir: str | pathlib.Path | epath.Path,
    *,
    task: Task | None = None,
    data_iterator_fn: Callable[[int], Iterator[Mapping[str, np.ndarray]]] | None = None,
    on_checkpoint: Callable[[int, TrainState], Mapping[str, float]] | None = None,
) -> TrainState:
    """Trains ``config.total_steps`` steps in ``workdir``, resuming from its last checkpoint.

    ``task``: the task of ``config`` when the caller holds it already (fine-tuning evaluates with
    it); default: built from ``config.task``. A run starting from scratch with
    ``config.task.pretrained_workdir`` set takes that run's weights (``restore.restore_variables``
    at ``task.pretrained_step``, merged by ``Task.load_pretrained``).
    ``data_iterator_fn(start_step)`` may replace the configured input pipeline (tests).
    ``on_checkpoint(step, state)``, called on every process at each checkpoint step (not
    on preemption), returns scalars written to the summaries at that step (fine-tuning's
    validation metric).
    ``workdir`` may be local or ``gs://``. Raises ``Preempted`` after saving when SIGTERM
    or Ctrl-C arrives, ``WorkdirLockedError`` when another run holds the workdir,
    ``CheckpointMismatchError`` when its checkpoints come from another config or model.
    On several hosts every process calls this; only process 0 writes summaries.
    """
    if not str(workdir).strip():
        raise workdir_lib.WorkdirError("the workdir is empty; pass --workdir=DIR (a new directory for a new run)")
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = _lock(workdir)
    try:
        return _train(config, workdir, task, data_iterator_fn, on_checkpoint)
    finally:
        if lock is not None:
            lock.release()


def _train(
    config: ml_collections.ConfigDict,
    workdir: epath.Path,
    task: Task | None,
    data_iterator_fn: Callable[[int], Iterator[Mapping[str, np.ndarray]]] | None,
    on_checkpoint: Callable[[int, TrainState], Mapping[str, float]] | None = None,
) -> TrainState:
    is_chief = jax.process_index() == 0
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    per_host_batch = sharding.check_batch_size(config.batch_size, mesh)
    if data_iterator_fn is None:
        _log_and_check_data(config)

        def data_iterator_fn(start_step: int) -> Iterator[Mapping[str, np.ndarray]]:
            return pipeline.make_train_iterator(
                config.data,
                batch_size=per_host_batch,
                seed=config.seed,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
                start_step=start_step,
            )

    ckpt = checkpoint.Checkpointer(workdir, config)
    try:
        s = setup(config, mesh, task)
        logging.info("%s", sharding.describe(s.mesh))
        counts = parameter_table(s.abstract_state.params)
        logging.info("parameters (%s):\n%s", config.model.name, format_parameter_table(counts))
        restored = ckpt.restore_latest(s.abstract_state)
    except BaseException:
        ckpt.close()
        raise
    config_file = workdir / restore.CONFIG_FILE
    if restored is not None:
        state, start = restored
        logging.info("resuming from the checkpoint at step %d in %s", start, ckpt.directory)
    else:
        if config_file.exists():
            logging.warning(
                "workdir %s held a run (config.json) but has no checkpoint in %s; training restarts from step 0",
                workdir,
                ckpt.directory,
            )
        start = 0
        state = s.init_fn()
        pretrained = config.task.get("pretrained_workdir", None)
        if pretrained:
            source = restore.restore_variables(pretrained, config.task.get("pretrained_step", None))
            params, model_state = s.task.load_pretrained(
                jax.device_get(state.params), jax.device_get(state.model_state), jax.device_get(source.variables)
            )
            state = state.replace(
                params=jax.device_put(params, s.state_sharding.params),
                model_state=jax.device_put(model_state, s.state_sharding.model_state),
            )
    if is_chief:
        config_file.write_text(config.to_json_best_effort(indent=2))
    batches = data_iterator_fn(start)
    total = int(config.total_steps)
    if start >= total:
        logging.info("nothing to do: the checkpoint is at step %d and config.total_steps=%d", start, total)
        ckpt.close()
        return state

    writer = metric_writers.create_default_writer(str(workdir), just_logging=not is_chief, asynchronous=True)
    writer.write_hparams({k: v for k, v in _flatten(config.to_dict()).items()})
    averager = MetricAverager()
    pending: tuple[int, dict[str, Array]] | None = None
    window_start, window_steps = time.perf_counter(), 0
    log_every = max(int(config.log_every_steps), 1)
    logging.info("training steps %d -> %d, global batch %d", start, total, config.batch_size)

    def finish_step(step: int, metrics: dict[str, Array]) -> None:
        nonlocal window_start, window_steps
        host = {k: float(v) for k, v in jax.device_get(metrics).items()}
        _check_finite(step, host, ckpt)
        averager.add(host)
        if step == start + 1:
            logging.info("first step done in %.1f s (includes compilation)", time.perf_counter() - window_start)
            window_start = time.perf_counter()
            return
        window_steps += 1
        if step % log_every == 0 or step == total:
            elapsed = time.perf_counter() - window_start
            sec_per_step = elapsed / max(window_steps, 1)
            means = averager.pop()
            means["examples_per_sec"] = config.batch_size / sec_per_step
            means["sec_per_step"] = sec_per_step
            writer.write_scalars(step, means)
            if is_chief:
                logging.info("%s", progress_line(step, total, means))
            window_start, window_steps = time.perf_counter(), 0

    try:
        with PreemptionWatch() as watch:
            for step in range(start + 1, total + 1):
                local = next(batches)
                state, metrics = s.train_step(state, sharding.global_batch(dict(local), s.mesh))
                if pending is not None:
                    finish_step(*pending)
                pending = (step, metrics)
                preempted = watch.should_stop(step)
                if preempted or step % ckpt.every_steps == 0 or step == total:
                    finish_step(*pending)
                    pending = None
                    ckpt.save(step, state, force=preempted or step == total)
                    if on_checkpoint is not None and not preempted:
                        writer.write_scalars(step, dict(on_checkpoint(step, state)))
                if preempted:
                    ckpt.wait()
                    raise Preempted(step, ckpt.directory, watch.signal_name)
            if pending is not None:
                finish_step(*pending)
    finally:
        writer.flush()
        ckpt.close()
    return state


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        else:
            out[key] = str(v)
    return out

"""Fine-tuning runs: the run (shared trainer) and its evaluation; the configs are
``configs/eval_finetune_cf{S,L}.py`` (the paper's recipe) and ``config_lib.finetune_config_from``
(the encoder of a given run).

    python -m audiossl_jax.main --config=configs/eval_finetune_cfS.py:synthetic \
        --workdir=runs/ft --config.task.pretrained_workdir=runs/demo

Trains ``tasks.classification.ClassificationTask`` with ``train.trainer.train`` (the
same loop, checkpoints and resume as pre-training), then scores every example of
``config.data.eval_split`` once and writes ``<workdir>/eval_<split>.json``.

Best checkpoint: at every checkpoint step the validation split
(``config.checkpoint.best_split``; by default the dataset's ``validation`` split when it
has one) is scored; its metrics go to TensorBoard as ``<split>/<metric>`` and the
parameters of the step with the highest ``BestCheckpoint.metric`` (mAP multi-label,
else accuracy) are kept in ``<workdir>/best/<step>/`` with ``best.json``. The
evaluation split is then scored with those parameters (the last step's when there is
no validation split), and the json names the step used.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from audiossl_jax.data import registry
from audiossl_jax.evaluation import embeddings, metrics
from audiossl_jax.tasks.classification import ClassificationTask
from audiossl_jax.train import sharding, trainer


def validation_split(config: ml_collections.ConfigDict) -> str | None:
    """The split scored at each checkpoint: ``config.checkpoint.best_split``, else 'validation'
    when the dataset has it, else None. Refuses the evaluation split (its score would be biased)."""
    split = config.checkpoint.get("best_split", None)
    if split is None:
        try:
            registry.get_dataset_info(config.data, "validation")
        except registry.DatasetError:
            logging.info(
                "dataset %s has no 'validation' split: no best checkpoint is kept (set "
                "config.checkpoint.best_split to choose one); the last step is evaluated",
                config.data.name,
            )
            return None
        split = "validation"
    if split == config.data.eval_split:
        raise ValueError(
            f"config.checkpoint.best_split={split!r} is the evaluation split (config.data.eval_split): "
            "a checkpoint chosen on it would bias its own score; name a validation split"
        )
    return split


class BestCheckpoint:
    """The variables of the checkpoint step with the highest validation ``metric`` (the first on a tie).

    Files: ``<workdir>/best/<step>/`` (Orbax, the model variables only) and
    ``<workdir>/best/best.json`` (split, metric, the best step and value, every scored step's
    value). The json is written after the new step's variables are complete and before the
    previous best is deleted, so it always names a complete directory; a resumed run
    continues from it.
    """

    def __init__(self, workdir: str | pathlib.Path, split: str, metric: str):
        self.directory = epath.Path(workdir) / "best"
        path = self.directory / "best.json"
        self.record = (
            json.loads(path.read_text())
            if path.exists()
            else {"split": split, "metric": metric, "step": None, "value": None, "history": {}}
        )
        if (self.record["split"], self.record["metric"]) != (split, metric):
            raise ValueError(
                f"{path} chose its best step by {self.record['split']} {self.record['metric']}, this run by {split} "
                f"{metric}: rerun with --config.checkpoint.best_split={self.record['split']}, or move {self.directory} "
                "away to start the choice afresh"
            )
        self.metric = metric

    def is_better(self, value: float) -> bool:
        """Finite and strictly above the best so far."""
        return math.isfinite(value) and (self.record["value"] is None or value > self.record["value"])

    def update(self, step: int, value: float, variables: Any) -> bool:
        """Records ``value`` of ``step``; saves ``variables`` when it is the best so far. Returns whether it was."""
        self.record["history"][str(step)] = value
        better = self.is_better(value)
        previous = self.record["step"]
        if better:
            with ocp.StandardCheckpointer() as saver:
                saver.save(self.directory / str(step), variables, force=True)
                saver.wait_until_finished()
            self.record.update(step=step, value=value)
        if jax.process_index() == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "best.json").write_text(json.dumps(self.record, indent=2))
            if better and previous is not None and previous != step:
                (self.directory / str(previous)).rmtree(missing_ok=True)
        return better

    def restore(self, like: Any) -> Any:
        """The best step's variables, placed like ``like`` (a tree of arrays of the same structure)."""
        if self.record["step"] is None:
            raise FileNotFoundError(f"no best checkpoint in {self.directory} yet")
        with ocp.StandardCheckpointer() as loader:
            return loader.restore(
                self.directory / str(self.record["step"]), jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
            )


def evaluate(
    task: ClassificationTask,
    variables: Mapping[str, Any],
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    batch_size: int,
    mesh: jax.sharding.Mesh,
) -> dict[str, float]:
    """Scores every example of ``split`` once; ``metrics.classification_metrics`` of them."""
    labels, scores = [], []
    for score, rows, label in embeddings.map_split(
        jax.jit(task.predict), variables, data_cfg, split, batch_size=batch_size, mesh=mesh
    ):
        scores.append(np.asarray(score)[rows])
        labels.append(label)
    label, score = np.concatenate(labels), np.concatenate(scores)
    if label.ndim == 1 and label.min() < 0:
        raise ValueError(
            f"dataset {data_cfg.name!r} split {split!r} has unlabelled examples (label -1); "
            "set config.data.label_key to a labelled column"
        )
    if task.multi_label:
        return metrics.classification_metrics(metrics.targets(label, task.num_classes), score, multi_label=True)
    if label.ndim != 1:
        raise ValueError(
            f"dataset {data_cfg.name!r} split {split!r} has multi-hot labels {label.shape}; "
            "set config.task.multi_label=True to fine-tune with the multi-label head"
        )
    return metrics.classification_metrics(label, score, multi_label=False)


def run(
    config: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    data_iterator_fn: Callable[[int], Iterator[Mapping[str, np.ndarray]]] | None = None,
) -> dict[str, float]:
    """Fine-tunes (resuming when ``workdir`` has checkpoints), evaluates, writes the json.

    ``config`` is a validated fine-tuning config (``config_lib.validate``: the entry point's job).
    ``data_iterator_fn`` replaces the configured training pipeline (``trainer.train``).
    """
    task = ClassificationTask(config)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    val_split = validation_split(config)
    best = BestCheckpoint(workdir, val_split, "mAP" if task.multi_label else "accuracy") if val_split else None

    def on_checkpoint(step: int, state: trainer.TrainState) -> dict[str, float]:
        variables = {"params": state.params, **state.model_state}
        scores = evaluate(task, variables, config.data, val_split, batch_size=config.batch_size, mesh=mesh)
        if best.update(step, scores[best.metric], variables):
            logging.info(
                "step %d: %s %s %.4f, the best so far (kept in %s)",
                step,
                val_split,
                best.metric,
                scores[best.metric],
                best.directory,
            )
        else:
            logging.info(
                "step %d: %s %s %.4f (best %.4f at step %s)",
                step,
                val_split,
                best.metric,
                scores[best.metric],
                best.record["value"],
                best.record["step"],
            )
        return {f"{val_split}/{k}": v for k, v in scores.items()}

    state = trainer.train(
        config, workdir, task=task, data_iterator_fn=data_iterator_fn, on_checkpoint=on_checkpoint if best else None
    )
    variables = {"params": state.params, **state.model_state}
    step = int(state.step)
    if best is not None and best.record["step"] is not None:
        variables, step = best.restore(variables), int(best.record["step"])
    split = config.data.eval_split
    result = evaluate(task, variables, config.data, split, batch_size=config.batch_size, mesh=mesh)
    result["step"] = step
    if best is not None and best.record["step"] is not None:
        result[f"{val_split}_{best.metric}"] = best.record["value"]
    path = pathlib.Path(workdir) / f"eval_{split}.json"
    path.write_text(json.dumps(result, indent=2))
    logging.info(
        "fine-tuned %s on %s, %s split at step %d: %s (written to %s)",
        config.model.name,
        config.data.name,
        split,
        step,
        result,
        path,
    )
    return result


if __name__ == "__main__":
    raise SystemExit(
        "error: fine-tuning runs through the one entry point, which dispatches on config.mode: "
        "python -m audiossl_jax.main --config=configs/eval_finetune_cfS.py:<variant> --workdir=DIR"
    )

"""Fine-tuning's validation metric in TensorBoard and the best checkpoint it keeps."""

import json
import math

import numpy as np
import pytest

from audiossl_jax import config_lib
from audiossl_jax.evaluation import embed, finetune


def test_best_checkpoint_follows_a_hand_given_metric_sequence(tmp_path):
    values = [0.2, 0.5, math.nan, 0.5, 0.4, 0.7]  # a NaN and a tie are never the best
    best = finetune.BestCheckpoint(tmp_path, "validation", "accuracy")
    kept = [
        best.update(step, v, {"params": {"w": np.full(3, step, np.float32)}}) for step, v in enumerate(values, start=1)
    ]
    assert kept == [True, True, False, False, False, True]
    record = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (record["step"], record["value"], record["metric"], record["split"]) == (6, 0.7, "accuracy", "validation")
    assert list(record["history"]) == ["1", "2", "3", "4", "5", "6"] and math.isnan(record["history"]["3"])
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["6", "best.json"]  # older bests deleted
    restored = best.restore({"params": {"w": np.zeros(3, np.float32)}})
    np.testing.assert_array_equal(np.asarray(restored["params"]["w"]), [6, 6, 6])
    resumed = finetune.BestCheckpoint(tmp_path, "validation", "accuracy")  # a rerun continues from best.json
    assert not resumed.update(7, 0.65, {"params": {"w": np.zeros(3, np.float32)}})
    assert resumed.update(8, 0.71, {"params": {"w": np.full(3, 8, np.float32)}}) and resumed.record["step"] == 8
    with pytest.raises(ValueError, match=r"best.json chose its best step by validation accuracy, this run by dev"):
        finetune.BestCheckpoint(tmp_path, "dev", "accuracy")


def scalars(workdir):
    """{tag: {step: value}} of the scalar summaries of every TensorBoard event file in ``workdir``."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    values = {tag: {e.step: tf.make_ndarray(e.tensor_proto) for e in acc.Tensors(tag)} for tag in acc.Tags()["tensors"]}
    return {
        tag: {step: float(v) for step, v in steps.items()}
        for tag, steps in values.items()
        if all(v.ndim == 0 and v.dtype.kind == "f" for v in steps.values())
    }


def test_finetune_logs_the_validation_metric_and_evaluates_the_best_step(tmp_path):
    c = config_lib.load_config_file("eval_finetune_cfS.py:smoke")
    c.task.output_dropout = 0.0
    c.data = embed.data_config("synthetic_audio/tiny", crop_seconds=1.0)
    c.total_steps, c.checkpoint.every_steps, c.log_every_steps = 4, 2, 2
    c.checkpoint.best_split = "test"
    with pytest.raises(ValueError, match=r"config.checkpoint.best_split='test' is the evaluation split"):
        finetune.run(c, tmp_path / "refused")
    c.checkpoint.best_split = "train"  # synthetic_audio has no validation split; 'train' exercises the path
    result = finetune.run(c, tmp_path)
    record = json.loads((tmp_path / "best" / "best.json").read_text())
    history = {int(k): v for k, v in record["history"].items()}
    assert sorted(history) == [2, 4]
    assert record["step"] == max(history, key=lambda s: (history[s], -s))  # the first of the highest
    assert result["step"] == record["step"] and result["train_accuracy"] == record["value"]
    logged = scalars(tmp_path)
    assert logged["train/accuracy"] == pytest.approx(history)
    assert set(logged) >= {"train/top5_accuracy", "loss"}
    assert json.loads((tmp_path / "eval_test.json").read_text()) == result

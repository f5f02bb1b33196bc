"""train/restore.py: a run's weights without its task, optimizer or train step; one task per load."""

import json

import jax
import numpy as np
import pytest
from conftest import built_once

from audiossl_jax import config_lib, inference
from audiossl_jax.tasks import temporal_gap
from audiossl_jax.train import optim, restore, trainer


def train_cnn(workdir):
    config = config_lib.load_config_file("pretrain_temporal_gap.py:smoke")
    state = trainer.train(config, workdir)
    return workdir, jax.device_get({"params": state.params, **state.model_state})


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """A 4-step smoke CNN run (parameters and BatchNorm statistics), checkpoints at steps 2 and 4; read only."""
    return built_once(tmp_path_factory, "cnn_run", train_cnn)


def assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(jax.device_get(got)), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


def refuse(*args, **kwargs):
    raise AssertionError("restoring weights built an optimizer or a train step")


def test_restores_the_trained_variables_without_an_optimizer(cnn_run, monkeypatch):
    workdir, want = cnn_run
    monkeypatch.setattr(optim, "make_optimizer", refuse)
    monkeypatch.setattr(trainer, "setup", refuse)
    got = restore.restore_variables(workdir)
    assert set(got.variables) == {"params", "batch_stats"} and got.step == 4 == restore.latest_step(workdir)
    assert got.source == {"workdir": str(workdir), "step": 4}
    assert_trees_equal(got.variables, want)
    earlier = restore.restore_variables(workdir, 2)
    assert earlier.step == 2
    assert not np.array_equal(  # the step asked for, not the latest
        jax.tree.leaves(earlier.variables["params"])[0], jax.tree.leaves(want["params"])[0]
    )


def test_restores_when_the_stored_optimizer_would_not_match(cnn_run, tmp_path):
    """A run config naming another optimizer (its state would not restore into that optimizer's
    tree) still gives the same weights: the optimizer state is never read."""
    workdir, want = cnn_run
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "checkpoints").symlink_to(workdir / "checkpoints")
    config = json.loads((workdir / restore.CONFIG_FILE).read_text())
    config["optimizer"].update(name="sgd", b1=None)
    (copy / restore.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="optimizer"):
        optim.make_optimizer(restore.load_config(copy))
    assert_trees_equal(restore.restore_variables(copy).variables, want)


def test_errors_name_the_path(cnn_run, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'config.json'} not found"):
        restore.restore_variables(tmp_path)
    workdir, _ = cnn_run
    (tmp_path / restore.CONFIG_FILE).write_text((workdir / restore.CONFIG_FILE).read_text())
    with pytest.raises(FileNotFoundError, match=f"no checkpoint under {tmp_path / 'checkpoints'}: train first"):
        restore.restore_variables(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 3 .* \(it holds steps \[2, 4\]\)"):
        restore.restore_variables(workdir, 3)


def count_tasks(monkeypatch, cls):
    """A list that records every construction of ``cls`` from now on."""
    built = []
    init = cls.__init__

    def counting(self, config):
        built.append(type(self).__name__)
        init(self, config)

    monkeypatch.setattr(cls, "__init__", counting)
    return built


def test_inference_load_builds_one_task_and_no_train_step(cnn_run, monkeypatch):
    workdir, want = cnn_run
    monkeypatch.setattr(trainer, "setup", refuse)
    built = count_tasks(monkeypatch, temporal_gap.TemporalGapTask)
    encoder = inference.load(workdir)
    assert built == ["TemporalGapTask"]
    assert_trees_equal(encoder.variables, want)

"""Data parallel, FSDP and tensor parallel on 8 fake devices: memory per device and results."""

import math

import flax.linen as nn
import jax
import numpy as np
import pytest
from test_trainer import smoke_config, synthetic_batches

from audiossl_jax.data import pipeline
from audiossl_jax.train import sharding, trainer

MIN_SIZE = 1024


def strategy_config(data, model, fsdp):
    return smoke_config(**{"mesh.data": data, "mesh.model": model, "mesh.fsdp": fsdp, "mesh.fsdp_min_size": MIN_SIZE})


def expected_bytes(leaves, data, model, fsdp):
    """NumPy re-derivation of one device's share of the parameters (or an optimizer tree).

    Tensor parallel halves (model=2) the leaves whose kernel has an 'mlp'/'heads' dimension
    divisible by the model axis; FSDP further divides by ``data`` every leaf of >= MIN_SIZE
    elements that has a remaining dimension divisible by ``data``.
    """
    total = 0
    for names, leaf in leaves:
        shape = list(leaf.shape)
        divisor = 1
        free = list(range(len(shape)))
        for i, name in enumerate(names):
            if name in ("mlp", "heads") and model > 1 and shape[i] % model == 0:
                divisor *= model
                free.remove(i)
        if fsdp and math.prod(shape) >= MIN_SIZE and any(shape[i] % data == 0 for i in free):
            divisor *= data
        total += leaf.nbytes // divisor
    return total


def state_and_names(config):
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
    s = trainer.setup(config, mesh)
    state = s.init_fn()
    names = nn.get_partition_spec(
        jax.eval_shape(lambda: s.task.init(jax.random.key(0), pipeline.example_batch(config, 1)))
    )["params"]
    return s, state, names


@pytest.fixture(scope="module")
def states():
    out = {}
    for key in [(8, 1, False), (8, 1, True), (4, 2, False), (4, 2, True)]:
        config = strategy_config(*key)
        out[key] = (config,) + state_and_names(config)
    return out


def _named_leaves(params, names):
    flat_p = jax.tree.leaves(params)
    flat_n = jax.tree.leaves(names, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    return [(tuple(n), np.zeros(p.shape, p.dtype)) for p, n in zip(flat_p, flat_n)]


@pytest.mark.parametrize("key", [(8, 1, False), (8, 1, True), (4, 2, False), (4, 2, True)])
def test_per_device_bytes_follow_the_strategy(states, key):
    config, s, state, names = states[key]
    leaves = _named_leaves(state.params, names)
    full = sum(leaf.nbytes for _, leaf in leaves)
    want = expected_bytes(leaves, *key)
    got_params = sharding.per_device_bytes(state.params)
    assert got_params == want, (key, got_params, want, full)
    # AdamW keeps two moments shaped like the parameters (mu, nu) and shards them alike.
    got_opt = sharding.per_device_bytes(state.opt_state)
    assert abs(got_opt - 2 * want) <= 64, (key, got_opt, 2 * want)
    if key == (8, 1, False):
        assert got_params == full
    if key == (8, 1, True):
        assert got_params < 0.2 * full, (got_params, full)


def test_fsdp_step_equals_one_device(states):
    batch = next(synthetic_batches(strategy_config(1, 1, False), 0))
    config1 = strategy_config(1, 1, False)
    mesh1 = sharding.make_mesh(config1.mesh.data, config1.mesh.model, jax.devices()[:1])
    s1 = trainer.setup(config1, mesh1)
    ref_state, ref_metrics = s1.train_step(s1.init_fn(), sharding.global_batch(batch, mesh1))
    ref = jax.device_get(ref_state.params)
    for key in [(4, 2, True)]:  # FSDP and tensor parallel together
        config, s, _, _ = states[key]
        state, metrics = s.train_step(s.init_fn(), sharding.global_batch(batch, s.mesh))
        np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        kernel = state.params["conformer"]["block0"]["ffn1"]["in"]["kernel"]
        assert "data" in tuple(kernel.sharding.spec), kernel.sharding.spec


def test_fsdp_spec_picks_largest_divisible_free_dimension():
    P = jax.sharding.PartitionSpec
    assert sharding.fsdp_spec((32, 64), P(None, "model"), 8, 0) == P("data", "model")
    assert sharding.fsdp_spec((64, 32), P(None, None), 8, 0) == P("data", None)
    assert sharding.fsdp_spec((6, 16, 40), P(), 8, 0) == P(None, None, "data")
    assert sharding.fsdp_spec((6, 10), P(), 8, 0) == P()
    assert sharding.fsdp_spec((64, 64), P(), 8, 10_000) == P()

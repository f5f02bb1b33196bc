"""bfloat16 compute with float32 parameters, optimizer state and loss, against float32."""

import jax
import jax.numpy as jnp
import numpy as np
from test_trainer import smoke_config, synthetic_batches

from audiossl_jax.train import sharding, trainer

STEPS = 3


def short_run(dtype):
    config = smoke_config(compute_dtype=dtype)
    config.model.dropout = config.model.feature_dropout = 0.0
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, jax.devices()[:1])
    s = trainer.setup(config, mesh)
    state = s.init_fn()
    initial = jax.device_get(state.params)
    batches = synthetic_batches(config, 0)
    losses = []
    jaxpr = None
    for _ in range(STEPS):
        batch = sharding.global_batch(next(batches), mesh)
        if jaxpr is None:
            jaxpr = str(jax.make_jaxpr(s.train_step)(state, batch))
        state, metrics = s.train_step(state, batch)
        losses.append(metrics["loss"])
    return initial, jax.device_get(state), np.array(jax.device_get(losses)), jaxpr


def test_bfloat16_compute_keeps_float32_state_and_tracks_float32():
    init32, state32, loss32, jaxpr32 = short_run("float32")
    init16, state16, loss16, jaxpr16 = short_run("bfloat16")
    # Same initial parameters: the compute dtype does not change initialisation.
    for a, b in zip(jax.tree.leaves(init32), jax.tree.leaves(init16)):
        np.testing.assert_array_equal(a, b)
    # Parameters, both Adam moments and the loss stay float32.
    for leaf in jax.tree.leaves(state16.params) + jax.tree.leaves(state16.opt_state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32, leaf.dtype
    assert loss16.dtype == np.float32
    # The bfloat16 step really computes matmuls in bfloat16; the float32 one never does.
    assert "bf16" in jaxpr16 and "dot_general" in jaxpr16
    assert "bf16" not in jaxpr32
    # Loss within 0.01 nats of float32 (0.2% of ln(101); measured: 3e-3) at every step
    # but not identical, and the parameter updates agree: relative difference of the
    # updates < 15% (measured: 12%; Adam normalises, so tiny gradients that flip sign
    # in bfloat16 count fully).
    np.testing.assert_allclose(loss16, loss32, atol=0.01)
    assert not np.array_equal(loss16, loss32)
    d32 = np.concatenate([(b - a).ravel() for a, b in zip(jax.tree.leaves(init32), jax.tree.leaves(state32.params))])
    d16 = np.concatenate([(b - a).ravel() for a, b in zip(jax.tree.leaves(init16), jax.tree.leaves(state16.params))])
    rel = np.linalg.norm(d16 - d32) / np.linalg.norm(d32)
    assert 0 < rel < 0.15, rel

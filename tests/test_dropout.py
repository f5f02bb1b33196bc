"""models.layers dropout: two 16-bit decisions per random word, checked against NumPy and Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from audiossl_jax.models import layers


def numpy_keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> np.ndarray:
    """Re-derivation: the same uint32 words, split little-endian into (low, high) halves."""
    words = np.asarray(jax.random.bits(key, shape[:-1] + (-(-shape[-1] // 2),), jnp.uint32))
    low, high = words & 0xFFFF, words >> 16
    halves = np.stack([low, high], axis=-1).reshape(shape[:-1] + (-1,))[..., : shape[-1]]
    return halves >= round(rate * 65536)


@pytest.mark.parametrize("shape", [(3, 7, 9), (5, 8), (11,)])
def test_keep_mask_matches_numpy_rederivation(shape):
    key = jax.random.key(3)
    keep, keep_prob = layers.keep_mask(key, 0.3, shape)
    np.testing.assert_array_equal(np.asarray(keep), numpy_keep_mask(key, 0.3, shape))
    assert keep_prob == 1.0 - round(0.3 * 65536) / 65536


def test_drop_rate_and_expectation():
    x = jnp.full((64, 4001), 2.0)
    y = np.asarray(layers.dropout(x, 0.1, jax.random.key(0)))
    n = y.size
    p = round(0.1 * 65536) / 65536
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[y != 0], 2.0 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 2.0) < 5 * 2.0 / (1 - p) * np.sqrt(p * (1 - p) / n)


def test_the_two_halves_of_a_word_are_independent():
    keep, _ = layers.keep_mask(jax.random.key(1), 0.5, (200_000, 2))
    low, high = np.asarray(keep).T.astype(float)
    assert abs(np.corrcoef(low, high)[0, 1]) < 0.02


def test_module_deterministic_and_edge_rates():
    x = jnp.arange(12.0).reshape(3, 4)
    rngs = {"dropout": jax.random.key(0)}
    assert (layers.Dropout(0.5).apply({}, x, deterministic=True) == x).all()
    assert (layers.Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs) == x).all()
    assert (layers.Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs) == 0).all()
    a = layers.Dropout(0.5).apply({}, x + 1, deterministic=False, rngs=rngs)
    b = layers.Dropout(0.5).apply({}, x + 1, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert (a != b).any()


def test_attention_without_dropout_equals_flax():
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 5, 3, 4)) for i in range(3))
    mask = jnp.tril(jnp.ones((5, 5), bool))[None, None]
    ours = layers.attention(q, k, v, mask=mask, deterministic=True)
    np.testing.assert_allclose(ours, nn.dot_product_attention(q, k, v, mask=mask), rtol=1e-6, atol=1e-6)


def test_attention_dropout_is_per_example_and_head():
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 6, 3, 4)) for i in range(3))
    key = jax.random.key(7)
    ours = layers.attention(q, k, v, dropout_rng=key, dropout_rate=0.4, deterministic=False)
    weights = np.asarray(nn.dot_product_attention_weights(q, k))  # [B, H, Tq, Tk]
    keep, keep_prob = layers.keep_mask(key, 0.4, weights.shape)
    keep = np.asarray(keep)
    expected = np.einsum("bhqk,bkhd->bqhd", np.where(keep, weights / keep_prob, 0.0), np.asarray(v))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert (keep[0] != keep[1]).any() and (keep[:, 0] != keep[:, 1]).any()


def test_sharded_input_gives_the_same_mask():
    x = jnp.ones((8, 6, 10))
    key = jax.random.key(5)
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    out = jax.jit(lambda a: layers.dropout(a, 0.25, key))(sharded)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(layers.dropout(x, 0.25, key)))

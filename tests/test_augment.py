"""Fine-tuning augmentations, linear softmax pooling and the tri-stage schedule vs NumPy."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from audiossl_jax import augment
from audiossl_jax.models.classifier import linear_softmax_pool
from audiossl_jax.train import optim


def test_temporal_jitter_shifts_within_range_and_fixes_lengths():
    b, n = 64, 1000
    wave = jnp.tile(jnp.arange(1, n + 1, dtype=jnp.float32), (b, 1))  # sample value = index + 1
    length = jnp.full((b,), 800, jnp.int32)
    out, new_length = jax.device_get(augment.temporal_jitter(jax.random.PRNGKey(0), wave, length, 200))
    shifts = []
    for row, ln in zip(out, new_length):
        first = np.flatnonzero(row)[0]
        shift = int(first - (row[first] - 1))  # a delay puts sample 0 at position `shift`
        shifts.append(shift)
        assert ln == min(800 + shift, n)
        np.testing.assert_array_equal(row[ln:], 0.0)
    assert min(shifts) >= -200 and max(shifts) <= 200
    assert min(shifts) < -100 and max(shifts) > 100  # both directions occur


def test_time_mask_length_bound_and_fill():
    b, t, f = 256, 100, 3
    x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
    count = jnp.asarray(np.random.default_rng(0).integers(10, t + 1, size=b))
    valid = jnp.arange(t)[None, :] < count[:, None]
    out, mask = jax.device_get(augment.time_mask(jax.random.PRNGKey(2), x, valid, 0.2))
    widths = mask.sum(axis=1)
    assert np.all(widths <= np.floor(0.2 * np.asarray(count)))
    assert widths.max() >= 15  # draws reach near the bound of 20 frames
    assert not np.any(mask & ~np.asarray(valid))
    for i in range(b):  # contiguous, filled with the clip's mean over valid frames
        idx = np.flatnonzero(mask[i])
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx)
            mean = np.asarray(x[i, : int(count[i])]).mean(axis=0)
            np.testing.assert_allclose(out[i, idx], np.broadcast_to(mean, (len(idx), f)), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out[i][~mask[i]], np.asarray(x[i])[~mask[i]])


def test_mixup_alpha_at_least_half_and_partner_mix():
    x = jax.random.normal(jax.random.PRNGKey(3), (512, 4, 2))
    mixed, alpha, partner = jax.device_get(augment.mixup(jax.random.PRNGKey(4), x, 0.5))
    assert alpha.min() >= 0.5 and alpha.max() <= 1.0
    assert np.sort(partner).tolist() == list(range(512))
    want = alpha[:, None, None] * np.asarray(x) + (1 - alpha[:, None, None]) * np.asarray(x)[partner]
    np.testing.assert_allclose(mixed, want, rtol=1e-5, atol=1e-6)
    # Folded Beta(0.5, 0.5) is U-shaped: many draws near 0.5 and near 1.
    assert np.mean(alpha > 0.95) > 0.15 and np.mean(alpha < 0.55) > 0.03


def test_linear_softmax_pool_matches_numpy():
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, size=(3, 7, 4)).astype(np.float32)
    p[0, 0, 0], p[1, 2, 1] = 0.0, 1.0  # clamped
    valid = np.arange(7)[None, :] < np.array([[7], [4], [1]])
    got = np.asarray(linear_softmax_pool(jnp.asarray(p), jnp.asarray(valid), 1e-6))
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    for i in range(3):
        v = q[i][valid[i]]
        np.testing.assert_allclose(got[i], (v**2).sum(0) / v.sum(0), rtol=1e-5)
    np.testing.assert_allclose(got[2], q[2, 0], rtol=1e-5)  # one frame: y = p


def _schedule_config(total=1000, peak=1e-3, fractions=(0.3, 0.3, 0.4), init=0.01, final=0.05):
    c = ml_collections.ConfigDict()
    c.total_steps = total
    c.schedule = ml_collections.ConfigDict(
        dict(
            name="tri_stage",
            peak_learning_rate=peak,
            warmup_fraction=fractions[0],
            hold_fraction=fractions[1],
            decay_fraction=fractions[2],
            init_scale=init,
            final_scale=final,
        )
    )
    return c


def test_tri_stage_schedule_matches_numpy():
    c = _schedule_config()
    schedule = optim.make_schedule(c)
    got = np.asarray([schedule(s) for s in (0, 150, 299, 300, 450, 599, 600, 800, 999, 1000, 1099)])
    want = []
    for s in (0, 150, 299, 300, 450, 599, 600, 800, 999, 1000, 1099):
        if s < 300:
            want.append(1e-3 * (0.01 + 0.99 * s / 300))
        elif s < 600:
            want.append(1e-3)
        elif s < 1000:
            want.append(1e-3 * np.exp(np.log(0.05) * (s - 600) / 400))
        else:
            want.append(1e-3 * 0.05)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_tri_stage_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to more than 1"):
        optim.make_schedule(_schedule_config(fractions=(0.5, 0.5, 0.4)))
    with pytest.raises(ValueError, match="final_scale"):
        optim.make_schedule(_schedule_config(final=0.0))

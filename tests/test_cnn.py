"""The CNN encoder/decoder of Tagliasacchi et al. (2020) and its BatchNorm under sharding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiossl_jax import config_lib
from audiossl_jax.models import cnn
from audiossl_jax.train import sharding, trainer

PAPER = (64, 128, 256, 256, 512, 512)


def _shapes(tree):
    return jax.tree.map(lambda a: a.shape, nn.unbox(tree))


def test_encoder_maps_slices_to_128_with_paper_structure():
    enc = cnn.CNNEncoder(PAPER, 128)
    x = jnp.zeros((2, 96, 64))
    variables = jax.eval_shape(lambda: nn.unbox(enc.init(jax.random.PRNGKey(0), x, train=False)))
    out = jax.eval_shape(lambda v: enc.apply(v, x, train=False), variables)
    assert out.shape == (2, 128)
    params = _shapes(variables["params"])
    ins = (1, 64, 128, 256, 256, 512)
    convs = sorted(k for k in params if k.startswith("conv"))
    assert convs == [f"conv{i}" for i in range(6)]
    for i, (cin, cout) in enumerate(zip(ins, PAPER)):
        assert params[f"conv{i}"]["kernel"] == (3, 3, cin, cout)
        assert "bias" not in params[f"conv{i}"]  # BatchNorm's shift replaces it
        assert params[f"bn{i}"]["scale"] == (cout,)
        assert _shapes(variables["batch_stats"])[f"bn{i}"]["mean"] == (cout,)
    assert params["embedding"]["kernel"] == (512, 128)
    # "Max-pooling is used whenever we increase the number of channels in the next layer":
    # after layers 1, 2 and 4 (64 -> 128, 128 -> 256, 256 -> 512); 96 x 64 -> 12 x 8.
    assert cnn.pool_after(PAPER) == (True, True, False, True, False, False)
    assert cnn.downsampling(PAPER) == 8
    _, inter = jax.eval_shape(
        lambda v: enc.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"]), variables
    )
    maps = {name: inter["intermediates"][name]["__call__"][0].shape for name in (f"bn{i}" for i in range(6))}
    # Hand-derived: 96 x 64 halves after conv0, conv1 and conv3.
    assert maps == {
        "bn0": (2, 96, 64, 64),
        "bn1": (2, 48, 32, 128),
        "bn2": (2, 24, 16, 256),
        "bn3": (2, 24, 16, 256),
        "bn4": (2, 12, 8, 512),
        "bn5": (2, 12, 8, 512),
    }


def _count(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nn.unbox(tree)))


def test_parameter_counts_match_a_hand_calculation():
    """Encoder: 3x3 kernels (no bias) + BatchNorm scale/shift + dense 512 -> 128 with bias.
    Decoder (1 output channel): dense 128 -> 12*8*512 with bias, the kernels in reverse,
    BatchNorm on the 5 inner layers, a last 3x3 conv 64 -> 1 with bias."""
    enc_kernels = 9 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 256 + 256 * 512 + 512 * 512)  # 4,497,984
    enc_norms = 2 * (64 + 128 + 256 + 256 + 512 + 512)  # 3,456
    enc_dense = 512 * 128 + 128  # 65,664
    assert enc_kernels + enc_norms + enc_dense == 4_567_104
    x, z = jnp.zeros((1, 96, 64)), jnp.zeros((1, 128))
    enc = jax.eval_shape(lambda: cnn.CNNEncoder(PAPER, 128).init(jax.random.PRNGKey(0), x, train=False))
    assert _count(enc["params"]) == 4_567_104
    dec_project = 128 * 12 * 8 * 512 + 12 * 8 * 512  # 6,340,608
    dec_kernels = 9 * (512 * 512 + 512 * 256 + 256 * 256 + 256 * 128 + 128 * 64 + 64 * 1) + 1  # + output bias
    dec_norms = 2 * (512 + 256 + 256 + 128 + 64)
    dec = jax.eval_shape(lambda: cnn.CNNDecoder(1, 96, 64, PAPER).init(jax.random.PRNGKey(0), z, train=False))
    assert _count(dec["params"]) == dec_project + dec_kernels + dec_norms == 10_841_025


def test_decoder_mirrors_encoder():
    dec = cnn.CNNDecoder(4, 96, 64, PAPER)
    z = jnp.zeros((2, 128))
    variables = jax.eval_shape(lambda: nn.unbox(dec.init(jax.random.PRNGKey(0), z, train=False)))
    out = jax.eval_shape(lambda v: dec.apply(v, z, train=False), variables)
    assert out.shape == (2, 96, 64, 4)
    params = _shapes(variables["params"])
    assert params["project"]["kernel"] == (128, 12 * 8 * 512)
    _, inter = jax.eval_shape(
        lambda v: dec.apply(v, z, train=False, capture_intermediates=True, mutable=["intermediates"]), variables
    )
    maps = {name: inter["intermediates"][name]["__call__"][0].shape for name in (f"conv{i}" for i in range(6))}
    # Upsampling where the encoder pooled: before conv3, conv1 and the output conv0.
    assert maps == {
        "conv5": (2, 12, 8, 512),
        "conv4": (2, 12, 8, 256),
        "conv3": (2, 24, 16, 256),
        "conv2": (2, 24, 16, 128),
        "conv1": (2, 48, 32, 64),
        "conv0": (2, 96, 64, 4),
    }
    outs = (4, 64, 128, 256, 256, 512)
    for i, (cin, cout) in enumerate(zip(PAPER, outs)):
        assert params[f"conv{i}"]["kernel"] == (3, 3, cin, cout)
    assert "bn0" not in params and params["conv0"]["bias"] == (4,)  # the output layer is linear


def _numpy_conv_same(x, kernel):
    """3x3 'SAME' cross-correlation: x [B, T, F], kernel [3, 3, 1, C] -> [B, T, F, C]."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    t, f = x.shape[1:]
    out = np.zeros(x.shape + (kernel.shape[-1],))
    for i in range(3):
        for j in range(3):
            out += xp[:, i : i + t, j : j + f, None] * kernel[i, j, 0]
    return out


@pytest.mark.parametrize("use_mask", [False, True])
def test_batch_norm_statistics_match_numpy(use_mask):
    enc = cnn.CNNEncoder((3,), 4, momentum=0.9, epsilon=1e-3)
    x = np.random.default_rng(0).normal(size=(5, 8, 6)).astype(np.float32)
    mask = np.array([True, False, True, True, False]) if use_mask else None
    variables = nn.unbox(enc.init(jax.random.PRNGKey(0), x, train=False))
    _, updates = enc.apply(variables, x, train=True, mask=mask, mutable=["batch_stats"])
    p = jax.device_get(variables["params"]["conv0"])
    y = _numpy_conv_same(x.astype(np.float64), p["kernel"])
    rows = y if mask is None else y[mask]
    stats = updates["batch_stats"]["bn0"]
    np.testing.assert_allclose(stats["mean"], 0.1 * rows.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * rows.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)


def _tone_batch(config):
    n = int(round(config.data.crop_seconds * config.frontend.sample_rate))
    rng = np.random.default_rng(3)
    t = np.arange(n) / config.frontend.sample_rate
    wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000, (config.batch_size, 1)) * t)
    wave += 0.05 * rng.normal(size=wave.shape)
    lengths = rng.integers(n // 2, n + 1, config.batch_size)
    wave[np.arange(n)[None] >= lengths[:, None]] = 0.0
    return {
        "waveform": wave.astype(np.float32),
        "length": lengths.astype(np.int32),
        "label": (np.arange(config.batch_size) % 12).astype(np.int32),
    }


def _one_step(config, devices):
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, devices)
    s = trainer.setup(config, mesh)
    state, metrics = s.train_step(s.init_fn(), sharding.global_batch(_tone_batch(config), mesh))
    return jax.device_get((state.params, state.model_state, metrics))


@pytest.mark.parametrize("task,mesh", [("audio2vec_cbow", (8, 1)), ("temporal_gap", (4, 2))])
def test_batch_norm_on_8_devices_equals_one_device(task, mesh):
    """Batch statistics over the batch sharded on 'data' are those of the global batch."""
    config = config_lib.load_config_file(f"pretrain_{task}.py:smoke")
    config.model.channels = (4, 8)
    config.mesh.data, config.mesh.model = mesh
    params8, stats8, metrics8 = _one_step(config, jax.devices())
    config.mesh.data, config.mesh.model = 1, 1
    params1, stats1, metrics1 = _one_step(config, jax.devices()[:1])
    np.testing.assert_allclose(metrics8["loss"], metrics1["loss"], rtol=1e-5, atol=1e-5)
    assert jax.tree.structure(stats8) == jax.tree.structure(stats1)
    assert len(jax.tree.leaves(stats8["batch_stats"])) > 0
    for a, b in zip(jax.tree.leaves((params8, stats8)), jax.tree.leaves((params1, stats1))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_logical_axes_of_cnn_parameters_on_the_mesh():
    """conv_in / conv_out / embed / classes are replicated; the heads' mlp splits over 'model'."""
    config = config_lib.load_config_file("pretrain_temporal_gap.py:smoke")
    config.mesh.data, config.mesh.model = 4, 2
    s = trainer.setup(config, sharding.make_mesh(config.mesh.data, config.mesh.model))
    p = s.abstract_state.params
    replicated = jax.sharding.PartitionSpec()
    assert p["encoder"]["conv1"]["kernel"].sharding.spec in (
        replicated,
        jax.sharding.PartitionSpec(None, None, None, None),
    )
    assert p["head"]["hidden"]["kernel"].sharding.spec == jax.sharding.PartitionSpec(None, "model")
    assert s.abstract_state.model_state["batch_stats"]["encoder"]["bn0"]["mean"].sharding.spec == replicated

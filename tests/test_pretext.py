"""Pretext tasks of Tagliasacchi et al. (2020): targets as the paper defines them, learning, embed, baseline."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiossl_jax import config_lib, save_untrained, tasks
from audiossl_jax.data import pipeline, registry
from audiossl_jax.models.cnn import slice_validity
from audiossl_jax.tasks import slice_task
from audiossl_jax.train import checkpoint, sharding, trainer

T, F = 200, 64  # frames of a 2 s smoke crop, mel bins


# Task name -> its config file configs/pretrain_<name>.py.
CONFIG_FILES = {"audio2vec_skipgram": "audio2vec_sg"}


def pretext_config(task, variant=""):
    return config_lib.load_config_file(f"pretrain_{CONFIG_FILES.get(task, task)}.py:{variant}")


def smoke(task, **overrides):
    config = pretext_config(task, "smoke")
    config.model.channels = (4, 8)  # two layers: fast to compile
    config.update_from_flattened_dict(overrides)
    return config


def index_logmel(b):
    """logmel[i, t, :] = 1000 i + t: a slice's first row tells its clip and start frame."""
    values = 1000.0 * np.arange(b)[:, None] + np.arange(T)[None, :]
    return jnp.asarray(np.repeat(values[..., None], F, axis=-1), jnp.float32)


def valid_and_logmel(b=64, seed=0):
    valid = np.random.default_rng(seed).integers(10, T + 1, b).astype(np.int32)
    valid[:4] = T
    return jnp.asarray(valid), index_logmel(b)


def clip_and_frame(slices):
    """slices [..., N, F] of index_logmel -> (clip [...], first frame [...]) of each slice."""
    first = np.asarray(slices[..., 0, 0]).astype(np.int64)
    return first // 1000, first % 1000


def check_rows_are_consecutive(slices, n):
    rows = np.asarray(slices[..., :, 0]) % 1000
    np.testing.assert_array_equal(np.diff(rows, axis=-1), 1)
    assert slices.shape[-2:] == (n, F)


@pytest.mark.parametrize("name", ["audio2vec_cbow", "audio2vec_skipgram"])
def test_audio2vec_context_and_middle_slices(name):
    task = tasks.get_task(smoke(name))
    n, g, p = task.slice_frames, task.gap, task.context
    valid, logmel = valid_and_logmel()
    s = task.sample(jax.random.PRNGKey(1), logmel, valid, None)
    starts = np.asarray(s["starts"])
    span = (2 * p + 1) * n + 2 * p * g
    assert task.span == span == 88
    np.testing.assert_array_equal(starts - starts[:, :1], np.tile(np.arange(2 * p + 1) * (n + g), (64, 1)))
    usable = np.asarray(s["usable"])
    np.testing.assert_array_equal(usable, np.asarray(valid) >= span)
    assert np.all(starts[usable, -1] + n <= np.asarray(valid)[usable])
    clip, frame = clip_and_frame(s["middle"])
    np.testing.assert_array_equal(clip, np.arange(64))
    np.testing.assert_array_equal(frame, starts[:, p])
    clip, frame = clip_and_frame(s["context"])  # time order: offsets -P..-1, +1..+P
    np.testing.assert_array_equal(frame, starts[:, [0, 1, 3, 4]])
    check_rows_are_consecutive(s["context"], n)


def test_skipgram_loss_compares_decoder_channel_j_with_neighbour_j():
    task = tasks.get_task(smoke("audio2vec_skipgram"))
    valid, logmel = valid_and_logmel(8)
    init = jax.jit(lambda s: task.model.init(jax.random.PRNGKey(0), s, method=lambda m, x: task.objective(m, x, False)))
    variables = init(task.sample(jax.random.PRNGKey(1), logmel, valid, None))
    variables = nn.unbox(variables)
    s = task.sample(jax.random.PRNGKey(2), logmel / 1000.0, valid, None)
    loss, _ = task.model.apply(variables, s, method=lambda m, x: task.objective(m, x, False))
    recon = task.model.apply(
        variables, s["middle"], method=lambda m, x: m.decoder(m.encode(x, train=False), train=False)
    )
    recon, context, usable = (np.asarray(a, np.float64) for a in (recon, s["context"], s["usable"]))
    assert recon.shape == (8, task.slice_frames, F, 4)
    err = np.stack([((recon[..., j] - context[:, j]) ** 2).mean(axis=(1, 2)) for j in range(4)], 1).mean(1)
    np.testing.assert_allclose(float(loss), (err * usable).sum() / usable.sum(), rtol=1e-5)


def test_window_starts_are_uniform_over_the_valid_positions():
    valid = jnp.full((20000,), 50, jnp.int32)
    starts, usable = slice_task.window_starts(jax.random.PRNGKey(0), valid, 41)
    counts = np.bincount(np.asarray(starts), minlength=10)
    assert bool(usable.all()) and len(counts) == 10  # starts 0..9
    assert counts.min() > 1800 and counts.max() < 2200  # 2000 expected each


def test_temporal_gap_matches_slice_offsets():
    task = tasks.get_task(smoke("temporal_gap"))
    n = task.slice_frames
    valid, logmel = valid_and_logmel(256)
    s = task.sample(jax.random.PRNGKey(3), logmel, valid, None)
    clip, frame = clip_and_frame(s["slices"])
    np.testing.assert_array_equal(clip, np.repeat(np.arange(256)[:, None], 2, 1))
    np.testing.assert_array_equal(frame, np.asarray(s["starts"]))
    usable = np.asarray(s["usable"])
    np.testing.assert_array_equal(usable, np.asarray(valid) >= n)
    gap = np.asarray(s["gap"])
    np.testing.assert_allclose(gap, np.abs(frame[:, 1] - frame[:, 0]) / (T - n), rtol=1e-6)
    assert np.all((gap >= 0) & (gap <= 1))
    assert np.all(frame[usable].max(axis=1) + n <= np.asarray(valid)[usable])
    full = np.asarray(valid) == T  # the whole crop is valid: the gap spans 0..1
    gaps = np.asarray(task.sample(jax.random.PRNGKey(4), logmel, jnp.full((256,), T), None)["gap"])
    assert full.sum() >= 4 and gaps.min() < 0.05 and gaps.max() > 0.95 and abs(gaps.mean() - 0.5) < 0.06


def test_temporal_gap_imposes_no_order():
    """ "We do not impose a temporal order between the two slices": either comes first with
    probability 1/2, and the target (the absolute gap) is the same for both orders."""
    task = tasks.get_task(smoke("temporal_gap"))
    b = 4000
    logmel = index_logmel(1)[jnp.zeros(b, jnp.int32)]
    s = task.sample(jax.random.PRNGKey(8), logmel, jnp.full((b,), T), None)
    _, frame = clip_and_frame(s["slices"])
    later_first = frame[:, 0] > frame[:, 1]
    apart = frame[:, 0] != frame[:, 1]
    share = later_first[apart].mean()
    assert apart.sum() > 3900 and abs(share - 0.5) < 4 * np.sqrt(0.25 / apart.sum())  # binomial, 4 sd
    gap = np.asarray(s["gap"])
    want = np.abs(frame[:, 0] - frame[:, 1]) / (T - task.slice_frames)
    np.testing.assert_allclose(gap[later_first], want[later_first], rtol=1e-6)
    np.testing.assert_allclose(gap[~later_first], want[~later_first], rtol=1e-6)
    # Both orders cover the same gaps: the order is independent of the gap.
    assert abs(gap[later_first].mean() - gap[apart & ~later_first].mean()) < 0.03


def test_cbow_decodes_the_concatenated_context_embeddings():
    """z = [z(-P), ..., z(-1), z(1), ..., z(P)] (2P D values) feeds the decoder; the loss is its MSE
    against the middle slice."""
    task = tasks.get_task(smoke("audio2vec_cbow"))
    valid, logmel = valid_and_logmel(8)
    objective = lambda m, x: task.objective(m, x, False)  # noqa: E731
    variables = nn.unbox(
        jax.jit(lambda s: task.model.init(jax.random.PRNGKey(0), s, method=objective))(
            task.sample(jax.random.PRNGKey(1), logmel, valid, None)
        )
    )
    d, p = 16, task.context
    assert variables["params"]["decoder"]["project"]["kernel"].shape[0] == 2 * p * d  # 64 = 4 x 16
    s = task.sample(jax.random.PRNGKey(2), logmel / 1000.0, valid, None)
    loss, _ = task.model.apply(variables, s, method=objective)
    ctx = [
        task.model.apply(variables, s["context"][:, j], method=lambda m, x: m.encode(x, train=False))
        for j in range(2 * p)
    ]
    z = np.concatenate([np.asarray(c) for c in ctx], axis=1)  # [B, 2P D], time order
    recon = task.model.apply(variables, jnp.asarray(z), method=lambda m, x: m.decoder(x, train=False))[..., 0]
    err = ((np.asarray(recon, np.float64) - np.asarray(s["middle"], np.float64)) ** 2).mean(axis=(1, 2))
    usable = np.asarray(s["usable"], np.float64)
    np.testing.assert_allclose(float(loss), (err * usable).sum() / usable.sum(), rtol=1e-5)
    # At the paper's sizes (P=2, d=128) the decoder's input is 512-d.
    paper = pretext_config("audio2vec_cbow")
    paper_task = tasks.get_task(paper)
    batch = {
        "waveform": jnp.zeros((1, 160000)),
        "length": jnp.full((1,), 160000, jnp.int32),
        "label": jnp.zeros((1,), jnp.int32),
    }
    shapes = jax.eval_shape(lambda: paper_task.init(jax.random.PRNGKey(0), batch))
    assert nn.unbox(shapes)["params"]["decoder"]["project"]["kernel"].shape == (512, 12 * 8 * 512)


def test_arrow_of_time_labels_match_the_reversal():
    task = tasks.get_task(smoke("arrow_of_time"))
    n = task.slice_frames
    valid, logmel = valid_and_logmel(128)
    s = task.sample(jax.random.PRNGKey(5), logmel, valid, None)
    rows = np.asarray(s["slice"][..., 0]) % 1000
    start, rev = np.asarray(s["start"]), np.asarray(s["reversed"])
    expected = start[:, None] + np.arange(n)[None, :]
    np.testing.assert_array_equal(rows, np.where(rev[:, None], expected[:, ::-1], expected))
    assert 0.3 < rev.mean() < 0.7


def test_triplet_negatives_come_from_another_clip():
    task = tasks.get_task(smoke("triplet"))
    valid, logmel = valid_and_logmel(64)
    s = task.sample(jax.random.PRNGKey(6), logmel, valid, None)
    clip, frame = clip_and_frame(s["slices"])
    own = np.arange(64)
    np.testing.assert_array_equal(clip[:, 0], own)
    np.testing.assert_array_equal(clip[:, 1], own)
    np.testing.assert_array_equal(clip[:, 2], np.asarray(s["negative_clip"]))
    assert np.all(clip[:, 2] != own) and len(set(clip[:, 2])) > 20
    np.testing.assert_array_equal(frame, np.asarray(s["starts"]))
    usable = np.asarray(s["usable"])
    v = np.asarray(valid)
    np.testing.assert_array_equal(usable, (v >= task.span) & (v[clip[:, 2]] >= task.span))


def test_supervised_targets_are_the_clip_labels():
    task = tasks.get_task(smoke("supervised"))
    valid, logmel = valid_and_logmel(8)
    label = jnp.asarray([0, 3, 11, -1, 5, 12, 7, 1])
    s = task.sample(jax.random.PRNGKey(7), logmel, valid, label)
    np.testing.assert_array_equal(np.asarray(s["labelled"]), np.array([1, 1, 1, 0, 1, 0, 1, 1], bool))
    assert not np.asarray(s["usable"])[[3, 5]].any()
    np.testing.assert_array_equal(np.asarray(s["label"])[[0, 1, 2]], [0, 3, 11])


def test_supervised_multi_label_loss_is_sigmoid_bce():
    """Multi-hot labels [B, C]: the loss equals a NumPy sigmoid binary cross-entropy (mean over classes)."""
    config = smoke("supervised", **{"task.num_classes": 5, "task.multi_label": True, "data.multi_label": True})
    task = tasks.get_task(config)
    valid, logmel = valid_and_logmel(8)
    label = (np.random.default_rng(0).uniform(size=(8, 5)) < 0.4).astype(np.float32)
    objective = lambda m, x: task.objective(m, x, False)  # noqa: E731
    s = task.sample(jax.random.PRNGKey(7), logmel / 1000.0, valid, jnp.asarray(label))
    variables = nn.unbox(task.model.init(jax.random.PRNGKey(0), s, method=objective))
    loss, metrics = task.model.apply(variables, s, method=objective)
    logits = np.asarray(
        task.model.apply(variables, s["slice"], method=lambda m, x: m.head(m.encode(x, train=False))), np.float64
    )
    bce = (np.logaddexp(0, logits) - label * logits).mean(axis=1)  # -y log s(x) - (1 - y) log(1 - s(x))
    usable = np.asarray(s["usable"], np.float64)
    np.testing.assert_allclose(float(loss), (bce * usable).sum() / usable.sum(), rtol=1e-5)
    hit = label[np.arange(8), logits.argmax(axis=1)] > 0
    np.testing.assert_allclose(float(metrics["top1_precision"]), (hit * usable).sum() / usable.sum(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"config.data.multi_label=False: must equal config.task.multi_label=True"):
        tasks.get_task(smoke("supervised", **{"task.multi_label": True}))
    with pytest.raises(ValueError, match=r"multi-hot labels \[B, 5\].*got shape \(8,\)"):
        task.sample(jax.random.PRNGKey(7), logmel, valid, jnp.zeros((8,), jnp.int32))


def test_paper_recipe_of_the_pretext_configs():
    """Adam at 1e-3 (Audio2Vec, AutoEncoder) or 1e-4 (others), batch 256, 3M iterations, AudioSet;
    the supervised encoder on AudioSet's 527 classes (multi-hot); its demo on the labelled built-in data."""
    rates = {"audio2vec_cbow": 1e-3, "audio2vec_skipgram": 1e-3, "autoencoder": 1e-3, "temporal_gap": 1e-4}
    rates.update(arrow_of_time=1e-4, triplet=1e-4, supervised=1e-4)
    for name, lr in rates.items():
        c = pretext_config(name)
        assert c.task.name == name
        assert (c.total_steps, c.batch_size, c.schedule.peak_learning_rate) == (3_000_000, 256, lr)
        assert (c.optimizer.weight_decay, c.schedule.warmup_steps, c.schedule.final_scale) == (0.0, 0, 1.0)
        assert c.data.name == "audioset" and c.task.slice_frames == 96 and c.frontend.power == 1.0
        assert tuple(c.model.channels) == (64, 128, 256, 256, 512, 512) and c.model.embed_dim == 128
        assert (c.optimizer.b1, c.optimizer.b2, c.optimizer.eps, c.optimizer.grad_clip_norm) == (0.9, 0.999, 1e-8, 0.0)
    cbow = pretext_config("audio2vec_cbow")
    assert (cbow.task.context_slices, cbow.task.gap_frames) == (2, 2)  # P = 2, G = 2
    for name in ("temporal_gap", "arrow_of_time"):  # "a single hidden layer of size 64" (our choice for ArrowOfTime)
        assert pretext_config(name).task.head_hidden == 64
    assert pretext_config("triplet").task.margin == 0.1  # our choice: the paper gives none
    sup = pretext_config("supervised")
    assert sup.task.head_hidden == 0  # a linear head
    assert (sup.task.num_classes, sup.task.multi_label, sup.data.multi_label) == (527, True, True)
    demo = pretext_config("supervised", "demo")
    assert (demo.data.name, demo.task.num_classes, demo.task.multi_label) == ("synthetic_audio", 12, False)
    tasks.get_task(demo)  # builds


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("data.crop_seconds", 0.5, "config.data.crop_seconds=0.5"),
        ("task.slice_frames", 31, "config.task.slice_frames=31"),
        ("task.context_slices", 0, "config.task.context_slices=0"),
        ("task.name", "audio2vec", "config.task.name='audio2vec'"),
    ],
)
def test_bad_config_values_name_the_key(key, value, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        tasks.get_task(smoke("audio2vec_cbow", **{key: value}))


@pytest.fixture(scope="module")
def tiny_batch(tmp_path_factory):
    """One batch of 16 crops of the built-in `synthetic_audio/tiny` (0.5-3 s clips, 2 s crops)."""
    data = smoke("supervised").data
    data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    registry.get_dataset_info(data, "train")
    return next(pipeline.make_train_iterator(data, batch_size=16, seed=0))


# task -> (metric, ratio): the mean of the metric over the last 5 of 30 steps on a fixed
# batch of built-in data must be below ratio x its mean over the first 5. The binary
# cross-entropies start near ln 2 and cannot reach 0 on soft/random targets, hence the
# milder ratios (TemporalGap: the KL part of its cross-entropy).
LEARNING = {
    "audio2vec_cbow": ("loss", 0.8),
    "audio2vec_skipgram": ("loss", 0.8),
    "autoencoder": ("loss", 0.8),
    "temporal_gap": ("loss_excess", 0.8),
    "arrow_of_time": ("loss", 0.9),
    "triplet": ("loss", 0.8),
    "supervised": ("loss", 0.8),
    "supervised_multi_label": ("loss", 0.8),  # the clip's class as a multi-hot [B, 12] label
}


@pytest.mark.parametrize("name", sorted(LEARNING))
def test_loss_falls_on_built_in_data(name, tiny_batch):
    batch = dict(tiny_batch)
    if name == "supervised_multi_label":
        config = smoke("supervised", batch_size=16, **{"task.multi_label": True, "data.multi_label": True})
        batch["label"] = np.eye(12, dtype=np.float32)[batch["label"]]
    else:
        config = smoke(name, batch_size=16)
    config.mesh.data = 1
    config.schedule.peak_learning_rate = 3e-3
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.model, jax.devices()[:1])
    s = trainer.setup(config, mesh)
    state = s.init_fn()
    batch = sharding.global_batch(batch, mesh)
    metric, ratio = LEARNING[name]
    values = []
    for _ in range(30):
        state, metrics = s.train_step(state, batch)
        values.append(float(metrics[metric]))
    assert np.isfinite(values).all()
    assert np.mean(values[-5:]) < ratio * np.mean(values[:5]), values


def test_embed_and_untrained_checkpoint(tmp_path, tiny_batch):
    config = smoke("temporal_gap")
    path = save_untrained.save_untrained(config, tmp_path)
    assert path.is_dir() and json.loads((tmp_path / "config.json").read_text())["task"]["name"] == "temporal_gap"
    s = trainer.setup(config, sharding.make_mesh(config.mesh.data, config.mesh.model))
    restored = checkpoint.Checkpointer(tmp_path, config).restore(s.abstract_state, 0)
    assert int(restored.step) == 0 and "batch_stats" in restored.model_state
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        save_untrained.save_untrained(config, tmp_path)
    task = tasks.get_task(config)
    frames, validity, centres = task.embed({"params": restored.params, **restored.model_state}, dict(tiny_batch))
    n, hop = task.slice_frames, 160
    assert frames.shape == (16, T // n, 16) and task.frames_per_step == n == config.task.slice_frames
    frames_in_clip = np.asarray(tiny_batch["length"])[:, None] // hop
    expected = (np.arange(T // n)[None, :] * n + n <= frames_in_clip) | (
        (np.arange(T // n) == 0) & (frames_in_clip > 0)
    )
    np.testing.assert_array_equal(np.asarray(validity), expected)
    np.testing.assert_allclose(np.asarray(centres), (np.arange(T // n) * n * hop + ((n - 1) * hop + 400) / 2) / 16000)


def test_slice_validity_keeps_the_first_slice_of_short_clips():
    """Whole slices inside the clip are valid; a non-empty clip shorter than one slice keeps slice 0."""
    valid = np.array([0, 1, 95, 96, 191, 192, 400])
    got = np.asarray(slice_validity(jnp.asarray(valid), 4, 96))
    for row, v in enumerate(valid):
        want = [(k + 1) * 96 <= v or (k == 0 and v > 0) for k in range(4)]
        assert got[row].tolist() == want, (v, got[row])

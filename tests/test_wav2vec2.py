"""wav2vec 2.0 task: masking, distractor sampling, and the loss against a NumPy eq. (1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiossl_jax import config_lib
from audiossl_jax.tasks import wav2vec2


def _prefix_valid(lengths, t):
    return jnp.arange(t)[None, :] < jnp.asarray(lengths)[:, None]


def test_span_mask_fraction_and_padding():
    t = 125
    lengths = [125, 100, 60, 7, 125, 33, 90, 125]
    valid = _prefix_valid(lengths, t)
    fractions = []
    for seed in range(20):
        mask = np.asarray(wav2vec2.span_mask(jax.random.key(seed), valid, 0.3, 3))
        assert not (mask & ~np.asarray(valid)).any(), "padding steps must never be masked"
        counts = mask.sum(axis=1)
        np.testing.assert_array_equal(counts, np.round(0.3 * np.asarray(lengths)))
        fractions.append(mask.sum() / np.asarray(valid).sum())
    assert abs(np.mean(fractions) - 0.3) < 0.005


def test_span_mask_uses_spans_of_three():
    valid = _prefix_valid([120] * 64, 120)
    mask = np.asarray(wav2vec2.span_mask(jax.random.key(0), valid, 0.3, 3)).astype(int)
    # Run lengths of masked steps: mostly multiples of 3 (merged spans), one trimmed run
    # per clip at most.
    runs = []
    for row in mask:
        edges = np.diff(np.concatenate([[0], row, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs.extend(ends - starts)
    runs = np.asarray(runs)
    assert (runs % 3 != 0).sum() <= 2 * len(mask)
    assert np.median(runs) >= 3
    # Different clips get different masks (independent randomness per example).
    assert len({tuple(r) for r in mask}) == len(mask)


def test_distractors_never_positive_and_uniform():
    count = jnp.array([8, 2, 5])
    slots = 8
    neg = np.asarray(wav2vec2.sample_distractors(jax.random.key(1), count, slots, 4000))
    own = np.arange(slots)[None, :, None]
    for b, n in enumerate(np.asarray(count)):
        d = neg[b, :n]
        assert (d != own[0, :n]).all(), "a distractor equals its positive"
        assert d.min() >= 0 and d.max() < n, "a distractor points outside the masked steps"
        if n > 2:
            hist = np.stack([np.bincount(d[i], minlength=n) for i in range(n)]) / d.shape[1]
            expected = (1 - np.eye(n)) / (n - 1)
            np.testing.assert_allclose(hist, expected, atol=0.05)


def _numpy_loss(c, q, neg_idx, valid, temperature):
    """Eq. (1) of Srivastava et al. (2022), one masked step at a time, in float64."""
    losses, correct = [], []
    for b in range(c.shape[0]):
        for m in range(c.shape[1]):
            if not valid[b, m]:
                continue
            cands = [q[b, m]] + [q[b, j] for j in neg_idx[b, m]]
            sims = []
            for k, cand in enumerate(cands):
                if k > 0 and np.array_equal(cand, q[b, m]):
                    sims.append(wav2vec2.IDENTICAL_DISTRACTOR_LOGIT)
                    continue
                cos = c[b, m] @ cand / (np.linalg.norm(c[b, m]) * np.linalg.norm(cand))
                sims.append(cos / temperature)
            sims = np.asarray(sims, np.float64)
            losses.append(-(sims[0] - np.log(np.exp(sims - sims.max()).sum()) - sims.max()))
            correct.append(np.argmax(sims) == 0)
    return np.mean(losses), np.mean(correct)


def test_contrastive_loss_matches_numpy():
    rng = np.random.default_rng(0)
    b, m, k, e = 3, 6, 5, 16
    c = rng.normal(size=(b, m, e)).astype(np.float32)
    q = rng.normal(size=(b, m, e)).astype(np.float32)
    q[0, 3] = q[0, 1]  # an identical distractor must be pushed out of the softmax
    count = np.array([6, 4, 2])
    neg = np.array(wav2vec2.sample_distractors(jax.random.key(3), jnp.asarray(count), m, k))
    neg[0, 1, 0], neg[0, 3, 0] = 3, 1  # make sure the identical pair is drawn
    negatives = q[np.arange(b)[:, None, None], neg]
    logits, identical = wav2vec2.contrastive_logits(jnp.asarray(c), jnp.asarray(q), jnp.asarray(negatives), 0.1)
    valid = np.arange(m)[None, :] < count[:, None]
    nll = -np.asarray(jax.nn.log_softmax(logits, axis=-1))[..., 0]
    ours = nll[valid].mean()
    ref, ref_acc = _numpy_loss(c.astype(np.float64), q.astype(np.float64), neg, valid, 0.1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    acc = (np.asarray(jnp.argmax(logits, -1)) == 0)[valid].mean()
    assert acc == ref_acc
    expected_identical = np.zeros_like(np.asarray(identical))
    expected_identical[0, 1] = neg[0, 1] == 3
    expected_identical[0, 3] = neg[0, 3] == 1
    np.testing.assert_array_equal(np.asarray(identical), expected_identical)
    assert logits.dtype == jnp.float32


def test_logits_have_finite_gradients_at_zero_vectors():
    """Padded slots hold zero vectors; their gradients must stay finite (not NaN)."""
    c = jnp.zeros((1, 2, 4)).at[0, 0].set(1.0)
    q = jnp.zeros((1, 2, 4)).at[0, 0].set(2.0)
    neg = jnp.zeros((1, 2, 3, 4))

    def f(c, q, neg):
        logits, _ = wav2vec2.contrastive_logits(c, q, neg, 0.1)
        return logits.sum()

    grads = jax.grad(f, argnums=(0, 1, 2))(c, q, neg)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def _smoke_batch(config, lengths):
    n = int(config.data.crop_seconds * config.frontend.sample_rate)
    rng = np.random.default_rng(0)
    wave = rng.normal(scale=0.1, size=(len(lengths), n)).astype(np.float32)
    for i, length in enumerate(lengths):
        wave[i, length:] = 0.0
    return {
        "waveform": jnp.asarray(wave),
        "length": jnp.asarray(lengths, jnp.int32),
        "label": jnp.zeros(len(lengths), jnp.int32),
    }


def test_task_loss_at_init_is_near_log_k_plus_one():
    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    config.data.crop_seconds = 4.0
    task = wav2vec2.Wav2Vec2Task(config)
    n = int(config.data.crop_seconds * config.frontend.sample_rate)
    batch = _smoke_batch(config, [n, n // 2, n, 3 * n // 4])
    variables = task.init(jax.random.key(0), batch)
    import flax.linen as nn

    loss, (metrics, _) = task.loss(nn.unbox(variables), batch, jax.random.key(1), train=False)
    # At initialisation all candidates look alike: the loss is close to ln(K + 1).
    assert abs(float(loss) - np.log(config.task.num_negatives + 1)) < 0.5
    assert abs(float(metrics["mask_fraction"]) - 0.3) < 0.02
    assert float(metrics["identical_distractors"]) == 0.0


def test_padding_does_not_change_valid_outputs():
    """Frames past a clip's length never influence the loss inputs of its valid steps."""
    import flax.linen as nn

    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    config.data.crop_seconds = 2.0
    task = wav2vec2.Wav2Vec2Task(config)
    n = int(config.data.crop_seconds * config.frontend.sample_rate)
    batch = _smoke_batch(config, [n // 2])
    noisy = dict(batch, waveform=batch["waveform"].at[:, n // 2 :].set(0.7))
    variables = nn.unbox(task.init(jax.random.key(0), batch))
    outs = []
    for b in (batch, noisy):
        logmel, fmask = task.features(b)
        enc, mask = task.model.apply(variables, logmel, fmask, method=task.model.encode)
        outs.append(np.asarray(enc)[np.asarray(mask)])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    frames, mask, times = task.embed(variables, batch)
    assert frames.shape == (1, n // 320 // 4, config.model.latent_dim) and task.frames_per_step == 4
    assert int(mask.sum()) == (n // 2) // 320 // 4
    # Latent step t covers samples [1280 t, 1280 t + 3 * 320 + 1024): centre 0.062 s + 0.08 t.
    np.testing.assert_allclose(np.asarray(times)[:3], [0.062, 0.142, 0.222], atol=1e-6)


def _hand_count(d, blocks, latent=256, stacked=4 * 64, ffn=1024, k_first=31, k_rest=15):
    """Parameters of the paper's layout, counted by hand (weights + biases; LN = scale + bias)."""
    ln = 2 * d
    ffn_module = ln + (d * ffn + ffn) + (ffn * d + d)
    attn = ln + 4 * (d * d + d)

    def conv(k):
        return ln + (d * 2 * d + 2 * d) + (k * d + d) + ln + (d * d + d)

    def block(k):
        return 2 * ffn_module + conv(k) + attn + ln

    feature = 2 * stacked + (stacked * latent + latent) + latent  # LN, linear -> Z, mask embedding
    context = (latent * d + d) + block(k_first) + (blocks - 1) * block(k_rest) + (d * latent + latent)
    return feature + context


# Section 2.2 and Section 5.1.2: cf_S, cf_L, cf_L with 8 and with 20 conformer blocks.
PAPER_COUNTS = [("S", 12, 18.4e6), ("L", 12, 88.1e6), ("L", 8, 58.9e6), ("L", 20, 146.6e6)]


def test_parameter_counts_match_paper():
    """All four counts the paper prints, at its precision (0.1M), and a hand count exactly."""
    import flax.linen as nn

    from audiossl_jax.train.trainer import parameter_table

    batch = {"waveform": jnp.zeros((1, 16000)), "length": jnp.array([16000]), "label": jnp.zeros((1,), jnp.int32)}
    for size, blocks, paper in PAPER_COUNTS:
        config = config_lib.load_config_file(f"pretrain_cf{size}.py")
        config.model.num_blocks = blocks
        assert config.data.name == "audioset"  # our choice for the paper's in-house 67k-hour corpus
        task = wav2vec2.Wav2Vec2Task(config)
        variables = jax.eval_shape(lambda: nn.unbox(task.init(jax.random.key(0), batch)))  # noqa: B023 (called at once)
        total = parameter_table(variables["params"])[0][1]
        assert total == _hand_count(config.model.model_dim, blocks), (size, blocks, total)
        assert round(total / 1e5) == round(paper / 1e5), f"cf_{size} with {blocks} blocks: {total:,} parameters"


def test_layout_is_the_papers():
    """stack R=4 -> LN -> linear -> Z; mask Z; linear -> conformer -> linear -> C; targets are Z itself."""
    import flax.linen as nn

    config = config_lib.load_config_file("pretrain_cfS.py:smoke")
    task = wav2vec2.Wav2Vec2Task(config)
    m = config.model
    n = int(config.data.crop_seconds * config.frontend.sample_rate)
    batch = _smoke_batch(config, [n, 3 * n // 4])
    variables = nn.unbox(task.init(jax.random.key(0), batch))
    p = variables["params"]
    assert sorted(p) == ["conformer", "context_in", "context_out", "feature_norm", "feature_proj", "mask_embedding"]
    assert p["feature_proj"]["kernel"].shape == (m.stack * 64, m.latent_dim)
    assert p["context_in"]["kernel"].shape == (m.latent_dim, m.model_dim)
    assert p["context_out"]["kernel"].shape == (m.model_dim, m.latent_dim)

    logmel, frame_mask = task.features(batch)
    x = np.asarray(logmel, np.float64)
    steps = x.shape[1] // m.stack
    stacked = x[:, : steps * m.stack].reshape(2, steps, m.stack * x.shape[2])
    norm = (stacked - stacked.mean(-1, keepdims=True)) / np.sqrt(stacked.var(-1, keepdims=True) + 1e-5)
    ln, proj = p["feature_norm"], p["feature_proj"]
    z_ref = (norm * np.asarray(ln["scale"]) + np.asarray(ln["bias"])) @ np.asarray(proj["kernel"]) + np.asarray(
        proj["bias"]
    )

    time_mask = jnp.zeros((2, steps), bool).at[:, 1:4].set(True)
    context, targets = task.model.apply(variables, logmel, frame_mask, time_mask, train=False)
    np.testing.assert_allclose(np.asarray(targets), z_ref, rtol=1e-4, atol=1e-4)
    # Masking acts on Z: the context encoder run on Z with the mask embedding at the masked steps.
    valid = wav2vec2.stacked_mask(frame_mask, m.stack)
    masked = np.where(np.asarray(time_mask)[..., None], np.asarray(p["mask_embedding"]), z_ref).astype(np.float32)
    by_hand = task.model.apply(variables, jnp.asarray(masked), valid, train=False, method=task.model.context)
    np.testing.assert_allclose(np.asarray(context), np.asarray(by_hand), rtol=1e-4, atol=1e-4)
    # Downstream embeddings are that same context output C, of the unmasked Z.
    frames, _ = task.model.apply(variables, logmel, frame_mask, method=task.model.encode)
    unmasked = task.model.apply(
        variables, jnp.asarray(z_ref, jnp.float32), valid, train=False, method=task.model.context
    )
    np.testing.assert_allclose(np.asarray(frames), np.asarray(unmasked), rtol=1e-4, atol=1e-4)
    assert frames.shape == (2, steps, m.latent_dim)
    # Dropout on Z (our choice, as wav2vec 2.0's dropout_input) acts on the context path only.
    z_dropout = task.model.clone(dropout=0.0, feature_dropout=0.5)
    c_train, t_train = z_dropout.apply(
        variables, logmel, frame_mask, time_mask, train=True, rngs={"dropout": jax.random.key(2)}
    )
    np.testing.assert_array_equal(np.asarray(t_train), np.asarray(targets))
    assert np.abs(np.asarray(c_train) - np.asarray(context)).max() > 1e-3

    # A run written by the old layout (no model.latent_dim) is refused with an error naming the key.
    old = config_lib.load_config_file("pretrain_cfS.py:smoke").model
    del old["latent_dim"]
    old.final_dim = 32
    with pytest.raises(ValueError, match=r"config.model=.*has no latent_dim.*older code version"):
        config_lib.validate_conformer(old)

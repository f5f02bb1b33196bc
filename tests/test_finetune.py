"""Loading encoders from checkpoints, embedding whole splits, and fine-tuning end to end."""

import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import built_once

from audiossl_jax import config_finetune, config_lib
from audiossl_jax.data import pipeline, registry
from audiossl_jax.evaluation import embed, embeddings, finetune
from audiossl_jax.tasks import classification
from audiossl_jax.train import restore, trainer


def pretrain(workdir):
    state = trainer.train(config_lib.load_config_file("pretrain_cfS.py:smoke"), workdir)
    return workdir, jax.device_get(state.params)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A smoke pre-training run (the tests only read it) and its parameters, once for the test run."""
    return built_once(tmp_path_factory, "pretrain", pretrain)


def tiny_data(crop_seconds=1.0):
    return embed.data_config("synthetic_audio/tiny", crop_seconds=crop_seconds)


def test_embed_dataset_covers_every_example_once(pretrained):
    workdir, params = pretrained
    task, variables = embeddings.load_encoder(workdir)
    for a, b in zip(jax.tree.leaves(jax.device_get(variables["params"])), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    data = tiny_data(3.0)
    out = embeddings.embed_dataset(task, variables, data, "test", batch_size=8, keep_frames=True)
    want_labels = [int(ex["label"]) for ex in registry.get_dataset(data, "test").as_numpy_iterator()]
    assert out["scene"].shape == (32, 32) and out["label"].tolist() == want_labels  # 32 clips, once, in order
    w = out["frame_valid"][..., None]
    np.testing.assert_allclose(out["scene"], (out["frames"] * w).sum(1) / w.sum(1), rtol=1e-5, atol=1e-6)
    # 3 s at a 20 ms hop = 150 frames, stacked by 4 -> 37 steps of 80 ms, centred at 62 ms + k * 80 ms.
    np.testing.assert_allclose(out["times"], 0.062 + 0.08 * np.arange(37), atol=1e-6)
    lengths = [len(ex["audio"]) for ex in registry.get_dataset(data, "test").as_numpy_iterator()]
    np.testing.assert_array_equal(out["frame_valid"].sum(1), [min(n, 48000) // 320 // 4 for n in lengths])


def test_load_encoder_names_missing_run(tmp_path):
    with pytest.raises(restore.ModelLoadError, match=r"neither a training workdir \(config.json"):
        embeddings.load_encoder(tmp_path)


def smoke_finetune_config(num_classes=12, multi_label=False, pooling="mean"):
    """configs/eval_finetune_cfS.py:smoke with ``num_classes`` classes, no output dropout."""
    c = config_lib.load_config_file("eval_finetune_cfS.py:smoke")
    c.task.update(dict(num_classes=num_classes, multi_label=multi_label, pooling=pooling, output_dropout=0.0))
    return c


def finetune_config(**task):
    c = smoke_finetune_config()
    c.total_steps, c.checkpoint.every_steps = 2, 2
    for k, v in task.items():
        c.task[k] = v
    return c


def host_params(task, config):
    """Freshly initialised, unboxed parameters as numpy arrays."""
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), pipeline.example_batch(config, 1)))
    return jax.tree.map(np.asarray, jax.device_get(variables["params"]))


def test_load_pretrained_copies_the_encoder(pretrained):
    workdir, params = pretrained
    c = finetune_config()
    task = classification.ClassificationTask(c)
    init = host_params(task, c)
    loaded, _ = task.load_pretrained(init, {}, restore.restore_variables(workdir).variables)
    for key in ("feature_norm", "feature_proj", "context_in", "conformer", "context_out"):
        for a, b in zip(jax.tree.leaves(loaded["encoder"][key]), jax.tree.leaves(params[key])):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded["head"]["kernel"], init["head"]["kernel"])


def test_load_pretrained_rejects_other_sizes(pretrained):
    workdir, _ = pretrained
    c = finetune_config(pretrained_workdir=str(workdir))
    c.model.ffn_dim = 48
    task = classification.ClassificationTask(c)
    with pytest.raises(ValueError, match=r"shape .* use the pretrained run's model sizes"):
        task.load_pretrained(host_params(task, c), {}, restore.restore_variables(workdir).variables)


def test_finetune_runs_end_to_end_with_consistency(pretrained, tmp_path, monkeypatch):
    """...and builds its task once: the trainer reads the pretrained weights (``train.restore``), the
    evaluation scores with the task it trained."""
    workdir, _ = pretrained
    c = finetune_config(pretrained_workdir=str(workdir), consistency=True, multi_label=True)
    built, init = [], classification.ClassificationTask.__init__
    monkeypatch.setattr(classification.ClassificationTask, "__init__", lambda self, c: built.append(c) or init(self, c))
    result = finetune.run(c, tmp_path)
    assert len(built) == 1
    assert set(result) >= {"mAP", "lwlrap", "mauc"} and 0 <= result["mAP"] <= 1
    assert json.loads((tmp_path / "eval_test.json").read_text()) == result


def test_symmetric_kl_matches_numpy():
    rng = np.random.default_rng(0)
    p, q = rng.uniform(0.05, 0.95, size=(2, 5, 3))
    got = classification.symmetric_kl(jnp.asarray(p), jnp.asarray(q), True, 1e-6)
    kl = lambda a, b: a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))  # noqa: E731
    np.testing.assert_allclose(got, (kl(p, q) + kl(q, p)).mean(-1), rtol=1e-5)
    a, b = rng.normal(size=(2, 5, 4))
    pa, pb = np.exp(a) / np.exp(a).sum(-1, keepdims=True), np.exp(b) / np.exp(b).sum(-1, keepdims=True)
    want = (pa * np.log(pa / pb)).sum(-1) + (pb * np.log(pb / pa)).sum(-1)
    np.testing.assert_allclose(
        classification.symmetric_kl(jnp.asarray(a), jnp.asarray(b), False, 1e-6), want, rtol=1e-5
    )


def test_bad_finetune_config_names_the_key():
    with pytest.raises(ValueError, match=r"config.task.output_dropout=1.5"):
        config_lib.validate(finetune_config(output_dropout=1.5))
    c = finetune_config()
    c.model.kernel_size = 4  # the conformer checks of pre-training apply to fine-tuning too
    with pytest.raises(ValueError, match=r"config.model.kernel_size=4: must be a positive odd number"):
        config_lib.validate(c)


def write_tagged_folder(root, tags):
    """WAVs of 1.2 s with a metadata.csv of ';'-separated tags; returns the class names, sorted."""
    import soundfile

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["filename,tags,split"]
    for i, cell in enumerate(tags):
        soundfile.write(root / f"clip{i}.wav", rng.uniform(-0.3, 0.3, 19200).astype(np.float32), 16000)
        lines.append(f"clip{i}.wav,{cell},{'test' if i % 4 == 3 else 'train'}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return sorted({t for cell in tags for t in cell.split(";") if t})


def test_multi_label_finetune_on_a_tagged_folder(tmp_path):
    tags = ["rock;guitar", "piano", "rock", "guitar;piano;rock", "piano;rock", "guitar", "rock;guitar", "piano"]
    names = write_tagged_folder(tmp_path / "audio", tags)
    c = smoke_finetune_config(len(names), multi_label=True)
    c.total_steps, c.checkpoint.every_steps, c.batch_size = 2, 2, 8
    c.data.update(
        dict(
            name="audio_folder",
            path=str(tmp_path / "audio"),
            data_dir=str(tmp_path / "dd"),
            label_key="tags",
            multi_label=True,
            crop_seconds=1.0,
            class_balanced=True,
        )
    )
    example = pipeline.example_batch(c, 4)
    assert example["label"].shape == (4, 3) and example["label"].dtype == np.float32
    batch = next(pipeline.make_eval_iterator(c.data, "train", batch_size=8))
    want = np.zeros((6, 3), np.float32)  # multi-hot from the CSV, re-derived here
    for row, cell in enumerate(t for i, t in enumerate(tags) if i % 4 != 3):
        want[row, [names.index(t) for t in cell.split(";")]] = 1.0
    np.testing.assert_array_equal(batch["label"][:6], want)
    task = classification.ClassificationTask(c)
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), example))
    loss, (step_metrics, _) = task.loss(
        variables, {k: v for k, v in batch.items() if k != "valid"}, jax.random.PRNGKey(1), train=True
    )
    assert np.isfinite(float(loss)) and 0.3 < float(loss) < 1.5  # BCE near ln 2 at initialisation
    result = finetune.run(c, tmp_path / "run")
    assert {"mAP", "lwlrap", "mauc"} <= set(result) and 0 <= result["mAP"] <= 1


def test_multi_label_example_batch_needs_num_classes():
    c = config_lib.load_config_file("pretrain_cfS.py:smoke")
    c.data.multi_label = True
    with pytest.raises(ValueError, match=r"config.task.num_classes"):
        pipeline.example_batch(c, 2)


def test_embed_module_and_main_import_together():
    """embed defines its flags only when run, so it does not clash with main's (--workdir)."""
    import subprocess
    import sys

    code = "import audiossl_jax.evaluation.embed, audiossl_jax.main"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_embed_command_caches_a_split_with_its_step(pretrained, tmp_path):
    """`python -m audiossl_jax.evaluation.embed` writes every test clip once and names the step it loaded."""
    import json
    import os
    import subprocess
    import sys

    workdir, _ = pretrained
    out = tmp_path / "emb.npz"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiossl_jax.evaluation.embed",
            f"--workdir={workdir}",
            "--data=synthetic_audio/tiny",
            "--split=test",
            "--crop_seconds=1.0",
            "--batch_size=8",
            "--frames",
            f"--out={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        meta = json.loads(str(f["meta"]))
        assert f["scene"].shape[0] == 32 and f["frames"].shape[0] == 32
        assert f["label"].shape == (32,) and set(f["label"].tolist()) <= set(range(12))
    assert meta["step"] == 4 and meta["split"] == "test"


def cnn_pretrain(workdir):
    c = config_lib.load_config_file("pretrain_supervised.py:smoke")
    c.model.channels = (4, 8)
    state = trainer.train(c, workdir)
    return c, workdir, jax.device_get(state.params), jax.device_get(state.model_state)


@pytest.fixture(scope="module")
def cnn_pretrained(tmp_path_factory):
    """A smoke supervised CNN run (the tests only read it), once for the test run."""
    return built_once(tmp_path_factory, "cnn_pretrain", cnn_pretrain)


def cnn_finetune_config(encoder_config, workdir, num_classes=12):
    c = config_lib.finetune_config_from(encoder_config, str(workdir), num_classes=num_classes, multi_label=False)
    c.total_steps, c.checkpoint.every_steps, c.log_every_steps = 3, 3, 1
    return c


def test_load_pretrained_copies_cnn_params_and_batch_stats(cnn_pretrained):
    encoder_config, workdir, params, model_state = cnn_pretrained
    c = cnn_finetune_config(encoder_config, workdir)
    assert c.task.slice_frames == 32 and config_lib.is_cnn(c)
    task = classification.ClassificationTask(c)
    assert (task.frames_per_step, task.num_classes, task.multi_label) == (32, 12, False)  # the declared interface
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), pipeline.example_batch(c, 1)))
    init = jax.tree.map(np.asarray, jax.device_get(dict(variables)))
    init_params, init_state = init.pop("params"), init
    loaded_params, loaded_state = task.load_pretrained(
        init_params, init_state, restore.restore_variables(workdir).variables
    )
    want_stats = model_state["batch_stats"]["encoder"]
    assert not np.allclose(want_stats["bn0"]["mean"], 0)  # the pretext run moved its running averages
    for got, want in (
        (loaded_params["encoder"], params["encoder"]),
        (loaded_state["batch_stats"]["encoder"], want_stats),
    ):
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded_params["head"]["kernel"], init_params["head"]["kernel"])


def test_cnn_slice_encoder_matches_the_pretext_embedding(cnn_pretrained):
    """Fine-tuning frames = the pretext task's ``embed`` over the same slices (independent path)."""
    from audiossl_jax import tasks

    encoder_config, workdir, _, _ = cnn_pretrained
    pretext_task, pretext_vars = embeddings.load_encoder(workdir)
    c = cnn_finetune_config(encoder_config, workdir)
    task = classification.ClassificationTask(c)
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), pipeline.example_batch(c, 1)))
    params, state = task.load_pretrained(
        variables["params"], {"batch_stats": variables["batch_stats"]}, restore.restore_variables(workdir).variables
    )
    rng = np.random.default_rng(0)
    batch = {
        "waveform": rng.uniform(-0.5, 0.5, (2, 32000)).astype(np.float32),
        "length": np.array([32000, 11000], np.int32),
        "label": np.array([1, 2], np.int32),
    }
    got, valid, times = task.embed({"params": params, **state}, batch)
    want, want_valid, want_times = pretext_task.embed(pretext_vars, batch)
    assert isinstance(pretext_task, type(tasks.get_task(encoder_config)))
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(times, want_times)
    assert np.asarray(valid).sum(1).tolist() == [6, 2]  # 200 frames -> 6 slices of 32; 68 frames -> 2


def test_cnn_finetune_runs_end_to_end(cnn_pretrained, tmp_path):
    encoder_config, workdir, params, model_state = cnn_pretrained
    c = cnn_finetune_config(encoder_config, workdir)
    result = finetune.run(c, tmp_path)
    assert 0 <= result["accuracy"] <= 1 and json.loads((tmp_path / "eval_test.json").read_text()) == result
    state = embeddings.load_encoder(tmp_path)[1]
    moved = [
        not np.allclose(a, b)
        for a, b in zip(
            jax.tree.leaves(jax.device_get(state["batch_stats"]["encoder"])),
            jax.tree.leaves(model_state["batch_stats"]["encoder"]),
        )
    ]
    assert any(moved)  # BatchNorm trained: running averages updated from the loaded ones


def test_every_finetune_variant_validates_and_label_fractions_apply():

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "eval_finetune_cfS.py"
    full = config_lib.load_config_file(f"{path}:audioset")
    variants = [
        "audioset_balanced",
        "fsdkaggle2019_curated",
        "fsdkaggle2019_noisy",
        "esc50",
        "dcase2019_1a",
        "magnatagatune",
        "kinetics700_audio",
        "synthetic",
        "fsdd_digits",
        "fsdd_speaker",
        "donateacry",
        "smoke",
    ]
    for variant in variants:
        config_lib.validate(config_lib.load_config_file(f"{path}:{variant}"))
    for percent in (10, 20, 33, 50, 100):
        c = config_lib.load_config_file(f"{path}:audioset_f{percent}")
        config_lib.validate(c)
        assert c.data.train_fraction == percent / 100
        c.data.train_fraction = 1.0
        assert c.to_dict() == full.to_dict()  # nothing else differs from the full-label variant
    assert config_lib.load_config_file(f"{path}:audioset_balanced_f10").data.name == "audioset_balanced"
    large = config_lib.load_config_file(f"{path.with_name('eval_finetune_cfL.py')}:audioset_f50")
    config_lib.validate(large)
    assert large.model.model_dim == 768 and large.data.train_fraction == 0.5 and large.task.num_classes == 527
    with pytest.raises(ValueError, match="_f<percent>"):
        config_lib.load_config_file(f"{path}:esc5")


def test_cnn_multi_label_finetune_pools_valid_slices(cnn_pretrained, tmp_path):
    """Multi-label CNN head == NumPy sigmoid + linear softmax pooling over valid slices; BCE; end to end."""
    encoder_config, workdir, _, model_state = cnn_pretrained
    tags = ["rock;guitar", "piano", "rock", "guitar;piano;rock", "piano;rock", "guitar", "rock;guitar", "piano"]
    names = write_tagged_folder(tmp_path / "audio", tags)
    c = config_lib.finetune_config_from(encoder_config, str(workdir), num_classes=len(names), multi_label=True)
    c.task.pooling = "linear_softmax"
    c.total_steps, c.checkpoint.every_steps, c.log_every_steps, c.batch_size = 3, 3, 1, 8
    c.data.update(
        dict(
            name="audio_folder",
            path=str(tmp_path / "audio"),
            data_dir=str(tmp_path / "dd"),
            label_key="tags",
            multi_label=True,
            crop_seconds=1.2,
            class_balanced=True,
        )
    )
    task = classification.ClassificationTask(c)
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), pipeline.example_batch(c, 1)))
    params, state = task.load_pretrained(
        variables["params"], {"batch_stats": variables["batch_stats"]}, restore.restore_variables(workdir).variables
    )
    variables = {"params": params, **state}
    rng = np.random.default_rng(1)
    batch = {
        "waveform": rng.uniform(-0.5, 0.5, (2, 19200)).astype(np.float32),
        "length": np.array([19200, 11000], np.int32),
        "label": np.array([[1, 0, 1], [0, 1, 0]], np.float32),
    }
    frames, valid, _ = (np.asarray(a, np.float64) for a in task.embed(variables, batch))
    assert valid.sum(1).tolist() == [3, 2]  # 120 frames -> 3 slices of 32; 68 frames -> 2
    head = jax.tree.map(np.asarray, params["head"])
    p = np.clip(1 / (1 + np.exp(-(frames @ head["kernel"] + head["bias"]))), 1e-6, 1 - 1e-6)
    want = (p * p * valid[..., None]).sum(1) / (p * valid[..., None]).sum(1)
    got = np.asarray(task.predict(variables, batch))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    loss, _ = task.loss(variables, batch, jax.random.PRNGKey(0), train=False)
    y = batch["label"]
    bce = -(y * np.log(want) + (1 - y) * np.log(1 - want)).mean()
    assert float(loss) == pytest.approx(bce, rel=1e-4)
    result = finetune.run(c, tmp_path / "run")
    assert {"mAP", "lwlrap", "mauc"} <= set(result) and 0 <= result["mAP"] <= 1
    trained = embeddings.load_encoder(tmp_path / "run")[1]
    moved = [
        not np.allclose(a, b)
        for a, b in zip(
            jax.tree.leaves(jax.device_get(trained["batch_stats"]["encoder"])),
            jax.tree.leaves(model_state["batch_stats"]["encoder"]),
        )
    ]
    assert any(moved)


def test_paper_variants_choose_head_batch_and_recipe():
    """Sec. 4: linear softmax pooling for AudioSet only, average pooling + linear elsewhere; batch 640 /
    64 for Full AudioSet / MagnaTagATune; augmentations and consistency loss in every variant."""
    heads = {}
    for size in ("S", "L"):
        for variant in [*config_finetune.PAPER_TASKS, *config_finetune.SHARED_TASKS, "synthetic", "smoke"]:
            c = config_lib.load_config_file(f"eval_finetune_cf{size}.py:{variant}")
            t = c.task
            assert (t.jitter_samples, t.time_mask_max_fraction, t.mixup, t.mixup_beta) == (200, 0.2, True, 0.5)
            assert t.consistency and t.consistency_weight == 2.0, variant
            sched = c.schedule
            assert (sched.name, sched.warmup_fraction, sched.hold_fraction, sched.decay_fraction) == (
                "tri_stage",
                0.3,
                0.3,
                0.4,
            )
            config_lib.validate(c)
            model = classification.ClassificationTask(c).model  # builds no parameters
            heads[variant] = (model.pooling, model.multi_label)
            assert c.data.class_balanced == (variant == "audioset"), variant
    assert heads["audioset"] == heads["audioset_balanced"] == ("linear_softmax", True)
    for variant in ("fsdkaggle2019_curated", "fsdkaggle2019_noisy", "magnatagatune"):
        assert heads[variant] == ("mean", True)  # multi-label: average pooling + linear + sigmoid
    for variant in ("esc50", "dcase2019_1a", "kinetics700_audio", "fsdd_digits", "smoke"):
        assert heads[variant] == ("mean", False)
    batch = {
        v: config_lib.load_config_file(f"eval_finetune_cfL.py:{v}").batch_size for v in config_finetune.PAPER_TASKS
    }
    assert batch["audioset"] == 640 and batch["magnatagatune"] == 64
    assert batch == {**{v: 64 for v in batch}, "audioset": 640, "kinetics700_audio": 640}  # our choice
    for variant, b in batch.items():  # more output dropout for the low-resource (batch 64) tasks
        assert config_lib.load_config_file(f"eval_finetune_cfS.py:{variant}").task.output_dropout == (
            0.1 if b == 64 else 0.0
        )
    with pytest.raises(ValueError, match=r"config.task.pooling='linear_softmax'.*multi_label=True"):
        config_lib.validate(finetune_config(pooling="linear_softmax"))
    with pytest.raises(ValueError, match=r"config.task.pooling='max'"):
        config_lib.validate(finetune_config(pooling="max"))


def test_both_heads_match_numpy():
    """predict and the loss of the three heads == NumPy on the encoder's frames (two clip lengths)."""
    rng = np.random.default_rng(0)
    batch = {
        "waveform": rng.uniform(-0.5, 0.5, (2, 16000)).astype(np.float32),
        "length": np.array([16000, 7000], np.int32),
    }
    y = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    tasks = {}
    for multi, pooling in ((False, "mean"), (True, "mean"), (True, "linear_softmax")):
        c = smoke_finetune_config(3, multi, pooling)
        tasks[multi, pooling] = classification.ClassificationTask(c)
    variables = nn.unbox(tasks[False, "mean"].init(jax.random.PRNGKey(0), {**batch, "label": y[:, 0]}))
    frames, valid, _ = (np.asarray(a, np.float64) for a in tasks[False, "mean"].embed(variables, batch))
    assert valid.sum(1).tolist() == [12, 5]  # 50 and 21 frames of 20 ms, stacked by 4
    head = jax.tree.map(lambda a: np.asarray(a, np.float64), jax.device_get(variables["params"]["head"]))
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    logits = ((frames * valid[..., None]).sum(1) / valid.sum(1, keepdims=True)) @ head["kernel"] + head["bias"]
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    p = sigmoid(frames @ head["kernel"] + head["bias"])
    want = {
        (False, "mean"): softmax,
        (True, "mean"): sigmoid(logits),
        (True, "linear_softmax"): (p * p * valid[..., None]).sum(1) / (p * valid[..., None]).sum(1),
    }
    for key, task in tasks.items():
        np.testing.assert_allclose(task.predict(variables, batch), want[key], rtol=1e-4, atol=1e-6)
        label = y if key[0] else np.array([2, 1], np.int32)
        loss, _ = task.loss(variables, {**batch, "label": label}, jax.random.PRNGKey(1), train=False)
        q = want[key]
        nll = -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(-1) if key[0] else -np.log(q[[0, 1], [2, 1]])
        assert float(loss) == pytest.approx(nll.mean(), rel=1e-4), key


def test_training_augments_in_the_papers_order_with_single_label_consistency(monkeypatch):
    """Jitter (waveform) -> time mask (logmels) -> mixup (the masked logmels), twice; the loss is
    the mean of the two cross-entropies + 2 x the symmetric KL of their softmaxes (NumPy)."""
    from audiossl_jax import augment

    calls = []  # (name, input, output) as traced
    for name in ("temporal_jitter", "time_mask", "mixup"):

        def record(rng, x, *args, _name=name, _fn=getattr(augment, name)):  # noqa: B008 (binds this loop's function)
            out = _fn(rng, x, *args)
            calls.append((_name, x, out[0]))
            return out

        monkeypatch.setattr(augment, name, record)
    c = config_lib.load_config_file("eval_finetune_cfS.py:smoke")
    task = classification.ClassificationTask(c)
    rng = np.random.default_rng(0)
    batch = {
        "waveform": rng.uniform(-0.5, 0.5, (4, 16000)).astype(np.float32),
        "length": np.array([16000, 16000, 12000, 9000], np.int32),
        "label": np.array([0, 3, 3, 7], np.int32),
    }
    variables = nn.unbox(task.init(jax.random.PRNGKey(0), batch))
    key = jax.random.PRNGKey(5)
    loss, (step_metrics, _) = task.loss(variables, batch, key, train=True)
    assert [name for name, _, _ in calls] == ["temporal_jitter", "time_mask", "mixup"] * 2
    for i in (0, 3):
        (_, wave, _), (_, masked_in, masked), (_, mix_in, _) = calls[i : i + 3]
        assert wave.shape == (4, 16000) and masked_in.shape == (4, 50, 64)
        assert mix_in is masked  # mixup takes the time-masked logmels
    a, b = (np.asarray(task.scores(variables, batch, k, train=True)[0], np.float64) for k in jax.random.split(key))
    assert not np.allclose(a, b)  # two independent augmentations (and dropouts)
    log_a = a - np.log(np.exp(a).sum(-1, keepdims=True))
    log_b = b - np.log(np.exp(b).sum(-1, keepdims=True))
    rows = np.arange(4), batch["label"]
    kl = (np.exp(log_a) * (log_a - log_b)).sum(-1) + (np.exp(log_b) * (log_b - log_a)).sum(-1)
    want = (0.5 * (-log_a[rows] - log_b[rows]) + 2.0 * kl).mean()
    assert float(step_metrics["symmetric_kl"]) == pytest.approx(kl.mean(), rel=1e-4)
    assert float(loss) == pytest.approx(want, rel=1e-4)

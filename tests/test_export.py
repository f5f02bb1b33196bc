"""Exports: parameters only, read by inference/HEAR/fine-tuning, and a SavedModel that runs without JAX."""

import json
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from audiossl_jax import config_lib, export, inference, tasks
from audiossl_jax.data import pipeline
from audiossl_jax.evaluation import embeddings
from audiossl_jax.train import restore

# TensorFlow's own tf.lite utilities import JAX when it is installed: the subprocess makes JAX (and this
# package) unimportable first, as on a machine that has only TensorFlow.
TF_ONLY = textwrap.dedent("""
    import importlib.abc
    import sys

    class NoJax(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("jax", "jaxlib", "flax", "audiossl_jax"):
                raise ImportError(f"{name} is blocked: this process must run with TensorFlow alone")

    sys.meta_path.insert(0, NoJax())
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    data = np.load(sys.argv[2])
    out = {}
    for name in ("short", "long"):
        ts = model.signatures["timestamp_embeddings"](audio=tf.constant(data[name]))
        out[name + "_emb"], out[name + "_ts"] = ts["embeddings"].numpy(), ts["timestamps"].numpy()
        out[name + "_scene"] = model.signatures["scene_embeddings"](audio=tf.constant(data[name]))["embeddings"].numpy()
    assert not {m.split(".")[0] for m in sys.modules} & {"jax", "jaxlib", "flax"}, "JAX was imported"
    np.savez(sys.argv[3], **out)
""")


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def test_conformer_export_runs_without_jax(conformer_smoke_run, tmp_path):
    run, out = conformer_smoke_run, tmp_path / "export"
    meta = export.export(run, out, batch_windows=4, platforms=("cpu",))
    stored = json.loads((out / restore.EXPORT_FILE).read_text())
    assert stored["format_version"] == restore.FORMAT_VERSION and stored["step"] == 0
    assert (
        stored["parameters"]
        == meta["parameters"]
        == sum(x.size for x in jax.tree.leaves(jax.device_get(embeddings.load_encoder(run)[1]["params"])))
    )
    # Parameters only: no optimizer moments or RNG. (Sizes are not compared here: an untrained run's
    # Adam moments are zeros, which Orbax stores compressed; docs/hear.md reports a trained run's.)
    held = ocp.StandardCheckpointer().metadata(out / restore.VARIABLES_DIR)
    assert set(getattr(held, "item_metadata", held).keys()) == {"params"}
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export(run, out)

    encoder = inference.load(out)
    leaves_equal(encoder.variables, embeddings.load_encoder(run)[1])

    # The SavedModel, in a fresh process with TensorFlow alone; variable batch and length (4 windows a call).
    rng = np.random.default_rng(0)
    w = encoder.window_samples
    audio = {
        "short": rng.uniform(-1, 1, (2, 4000)).astype(np.float32),
        "long": rng.uniform(-1, 1, (3, 2 * w + 3000)).astype(np.float32),
    }
    np.savez(tmp_path / "audio.npz", **audio)
    (tmp_path / "tf_only.py").write_text(TF_ONLY)
    subprocess.run(
        [
            sys.executable,
            str(tmp_path / "tf_only.py"),
            str(out / export.SAVED_MODEL_DIR),
            str(tmp_path / "audio.npz"),
            str(tmp_path / "tf.npz"),
        ],
        check=True,
    )
    got = np.load(tmp_path / "tf.npz")
    for name, x in audio.items():
        want = inference.embed_sounds(encoder, list(x))
        frames = np.stack([s.frames for s in want])
        assert got[name + "_emb"].shape == frames.shape
        # TensorFlow's XLA and JAX's compile the same StableHLO apart (FFT, reduction order): measured
        # differences reach 1.3e-5 on layer-normalised embeddings of magnitude ~3, so 1e-5 of that scale.
        scale = float(np.abs(frames).max())
        np.testing.assert_allclose(got[name + "_emb"], frames, rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(got[name + "_ts"], np.stack([s.times for s in want]) * 1000, atol=1e-3)
        np.testing.assert_allclose(got[name + "_scene"], frames.mean(1), rtol=0, atol=1e-5 * scale)


def test_cnn_export_feeds_finetuning(cnn_smoke_run, tmp_path):
    run, out = cnn_smoke_run, tmp_path / "export"
    export.export(run, out, saved_model=False)
    held = ocp.StandardCheckpointer().metadata(out / restore.VARIABLES_DIR)
    assert set(getattr(held, "item_metadata", held).keys()) == {"params", "batch_stats"}
    source = embeddings.load_encoder(run)[1]
    # Fine-tuning takes the export as task.pretrained_workdir: encoder parameters and BatchNorm statistics.
    ft = config_lib.finetune_config_from(restore.load_config(out), str(out), num_classes=3, multi_label=False)
    task = tasks.get_task(ft)
    variables = jax.device_get(task.init(jax.random.PRNGKey(1), pipeline.example_batch(ft, 1)))
    variables = nn.unbox(variables)
    params, state = task.load_pretrained(
        variables["params"], {"batch_stats": variables["batch_stats"]}, restore.restore_variables(out).variables
    )
    leaves_equal(params["encoder"], source["params"]["encoder"])
    leaves_equal(state["batch_stats"]["encoder"], source["batch_stats"]["encoder"])
    with pytest.raises(ValueError, match="export of step 0 only, not step 3"):
        embeddings.load_encoder(out, 3)
    assert restore.latest_step(out) == 0 and not (out / "checkpoints").exists()
    with pytest.raises(ValueError, match="already an export"):
        export.export(out, tmp_path / "again")


def test_export_format_version_is_checked(tmp_path):
    (tmp_path / restore.EXPORT_FILE).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(inference.ModelLoadError, match="format_version 99"):
        inference.load(tmp_path)

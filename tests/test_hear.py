"""The HEAR 2021 API over both encoder families: shapes, timestamps, windows, scene = mean."""

import numpy as np
import pytest
import tensorflow as tf

from audiossl_jax import hear, inference


def noise(n_sounds, n_samples, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n_sounds, n_samples)).astype(np.float32)


def check_api(workdir, *, step_frames, hop, win, window_samples, tail):
    """Timestamps by hand, long input = its windows' embeddings joined, scene = mean, TF in -> TF out."""
    model = hear.load_model(str(workdir))
    assert isinstance(model, tf.Module) and model.sample_rate == 16000
    assert model.encoder.window_samples == window_samples
    step = step_frames * hop
    n = 2 * window_samples + tail
    audio = noise(3, n)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    frames = n // step
    assert emb.shape == (3, frames, model.timestamp_embedding_size) and emb.dtype == np.float32
    assert ts.shape == (3, frames) and ts.dtype == np.float32
    # Step k covers samples [k * step, k * step + (step_frames - 1) * hop + win): its centre, in ms.
    want = (np.arange(frames) * step + ((step_frames - 1) * hop + win) / 2) / 16000 * 1000
    np.testing.assert_allclose(ts, np.broadcast_to(want, (3, frames)), rtol=0, atol=1e-3)
    np.testing.assert_allclose(np.diff(ts, axis=1), step / 16.0, atol=1e-3)  # evenly spaced

    parts = [
        hear.get_timestamp_embeddings(audio[:, s : s + window_samples], model)[0] for s in range(0, n, window_samples)
    ]
    np.testing.assert_allclose(emb, np.concatenate(parts, axis=1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(emb[:, 0], emb[:, -1])  # frames differ: nothing was broadcast

    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == np.float32
    np.testing.assert_allclose(scene, emb.mean(axis=1), rtol=1e-5, atol=1e-6)

    tf_emb, tf_ts = hear.get_timestamp_embeddings(tf.constant(audio), model)
    assert isinstance(tf_emb, tf.Tensor) and tf_emb.dtype == tf.float32 and tf_ts.dtype == tf.float32
    np.testing.assert_allclose(tf_emb.numpy(), emb, rtol=1e-6, atol=1e-6)
    tf_scene = hear.get_scene_embeddings(tf.constant(audio), model)
    assert isinstance(tf_scene, tf.Tensor)
    return model


def test_conformer_hear_api(conformer_smoke_run):
    # smoke conformer: hop 320, win 1024, stack 4 (80-ms steps); 1-s crops -> 12 steps per window.
    model = check_api(conformer_smoke_run, step_frames=4, hop=320, win=1024, window_samples=15360, tail=5000)
    with pytest.raises(ValueError, match="sound 0: 1000 samples"):
        hear.get_scene_embeddings(np.stack([noise(1, 1000)[0]] * 2), model)
    with pytest.raises(ValueError, match=r"\[n_sounds, n_samples\]"):
        hear.get_scene_embeddings(noise(1, 2000)[0], model)


def test_cnn_hear_api(cnn_smoke_run):
    # smoke CNN: hop 160, win 400, slices of 32 frames (320 ms); 2-s crops -> 6 slices per window.
    model = check_api(cnn_smoke_run, step_frames=32, hop=160, win=400, window_samples=30720, tail=6000)
    assert model.scene_embedding_size == 16
    # Every block's output (--layers=all): block i max-pooled over the slice, [T, C_i]; the encoder's
    # embedding is its dense layer applied to the last block's, which checks what was captured.
    sound = inference.embed_sounds(model.encoder, [noise(1, 40000)[0]], layers=True)[0]
    assert [x.shape for x in sound.layers] == [(7, c) for c in (4, 8, 8, 8, 16, 16)]
    assert all((x >= 0).all() for x in sound.layers)  # after ReLU
    dense = model.encoder.variables["params"]["encoder"]["embedding"]
    np.testing.assert_allclose(
        sound.layers[-1] @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"]), sound.frames, rtol=1e-4, atol=1e-5
    )
    # A sound shorter than one slice keeps one zero-padded slice, as in evaluation.
    emb, ts = hear.get_timestamp_embeddings(noise(2, 3000), model)
    assert emb.shape == (2, 1, 16)


def test_load_model_names_what_it_needs(tmp_path):
    with pytest.raises(inference.ModelLoadError, match="neither a training workdir"):
        hear.load_model(str(tmp_path))

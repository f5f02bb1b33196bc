"""Embedding a folder: whole files by windows, every layer, skipped files listed, resumable, Parquet = npz."""

import json

import flax
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile

from audiossl_jax import embed, inference
from audiossl_jax.data import audio_io


class Interrupted(Exception):
    """Stands in for Ctrl-C or a preemption in the middle of a run."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    soundfile.write(root / "a.wav", rng.uniform(-0.5, 0.5, 40000).astype(np.float32), 16000)  # 2.5 s: 3 windows
    (root / "sub").mkdir()
    soundfile.write(root / "sub" / "b.flac", rng.uniform(-0.5, 0.5, (28665, 2)), 22050)  # 1.3 s stereo
    soundfile.write(root / "tiny.wav", rng.uniform(-0.5, 0.5, 160).astype(np.float32), 16000)  # 10 ms
    (root / "bad.wav").write_bytes(b"not audio at all")
    (root / "song.m4a").write_bytes(b"\x00" * 64)
    (root / "notes.txt").write_text("hello")
    return root


def test_embed_folder_resumes_and_lists_what_it_skips(folder, conformer_smoke_run, tmp_path, monkeypatch):
    out = tmp_path / "emb.parquet"
    real, calls = embed.embed_part, []

    def interrupted(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise Interrupted  # stopped while embedding the second part
        return real(*args, **kwargs)

    monkeypatch.setattr(embed, "embed_part", interrupted)
    with pytest.raises(Interrupted):
        embed.run(str(conformer_smoke_run), folder, out, layers=True, files_per_part=1)
    assert sorted(p.name for p in embed.parts_dir(out).glob("part-*")) == ["part-00000.npz"]
    with pytest.raises(ValueError, match="parts of another run"):
        embed.run(str(conformer_smoke_run), folder, out, layers=False, files_per_part=1)
    calls.clear()
    monkeypatch.setattr(embed, "embed_part", lambda *args, **kwargs: calls.append(args[2]) or real(*args, **kwargs))
    meta = embed.run(str(conformer_smoke_run), folder, out, layers=True, files_per_part=1)
    assert len(calls) == 3  # four audio-named files, one part each; the first was already done
    assert not embed.parts_dir(out).exists()

    assert meta["files_embedded"] == 2 and meta["files_skipped"] == 4
    skipped = dict(line.split("\t") for line in embed.skipped_path(out).read_text().splitlines()[1:])
    assert sorted(skipped) == ["bad.wav", "notes.txt", "song.m4a", "tiny.wav"]
    assert "not a readable audio file" in skipped["bad.wav"] and "AAC/ALAC" in skipped["song.m4a"]
    assert "shorter than one embedding step" in skipped["tiny.wav"] and "not an audio" in skipped["notes.txt"]

    # Independent reference: each file decoded and embedded alone.
    encoder = inference.load(conformer_smoke_run)
    table = pq.read_table(out)
    assert json.loads(table.schema.metadata[b"audiossl_jax"])["files_skipped"] == 4
    rows = table.to_pydict()
    for name in ("a.wav", "sub/b.flac"):
        sound = audio_io.read_audio(str(folder / name), 16000)
        assert len(sound) == (40000 if name == "a.wav" else 20800)  # 1.3 s at 16 kHz
        want = inference.embed_sounds(encoder, [sound], layers=True)[0]
        mine = [i for i, f in enumerate(rows["file"]) if f == name]
        assert len(mine) == len(want.frames) == len(sound) // 1280  # 80-ms steps
        assert [rows["frame"][i] for i in mine] == list(range(len(mine)))
        np.testing.assert_allclose([rows["embedding"][i] for i in mine], want.frames, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([rows["timestamp_ms"][i] for i in mine], want.times * 1000, atol=1e-3)
        assert len(want.layers) == 2  # one per conformer block
        np.testing.assert_allclose([rows["layer_1"][i] for i in mine], want.layers[1], rtol=1e-5, atol=1e-5)
        # The context encoder's last linear layer maps the last block's output to the embedding.
        (out_proj,) = [
            v
            for k, v in flax.traverse_util.flatten_dict(encoder.variables["params"], sep="/").items()
            if k.endswith("context_out/kernel")
        ]
        (out_bias,) = [
            v
            for k, v in flax.traverse_util.flatten_dict(encoder.variables["params"], sep="/").items()
            if k.endswith("context_out/bias")
        ]
        np.testing.assert_allclose(
            want.layers[1] @ np.asarray(out_proj) + np.asarray(out_bias), want.frames, rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose([rows["layer_0"][i] for i in mine], want.layers[0], rtol=1e-5, atol=1e-5)
        assert not np.allclose(want.layers[0], want.frames)

    npz_out = tmp_path / "emb.npz"
    embed.run(str(conformer_smoke_run), folder, npz_out, files_per_part=8)
    with np.load(npz_out) as f:
        assert f["files"].tolist() == ["a.wav", "sub/b.flac"] and "layer_0" not in f
        assert f["offsets"].tolist() == [0, 31, 31 + 16]
        np.testing.assert_allclose(f["embedding"], np.asarray(rows["embedding"]), rtol=1e-5, atol=1e-5)
        assert json.loads(str(f["meta"]))["skipped"][0] == {"file": "bad.wav", "reason": skipped["bad.wav"]}


def test_embed_rejects_unknown_output(folder, conformer_smoke_run, tmp_path):
    with pytest.raises(ValueError, match=".parquet or .npz"):
        embed.run(str(conformer_smoke_run), folder, tmp_path / "emb.csv")

"""Protocol usability: several splits embedded in one process, embeddings shared across label
columns, shipped config paths independent of the working directory."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from audiossl_jax.evaluation import embed

# Runs `evaluation.embed` for two splits in one process, counting model loads and forward traces,
# then embeds each split alone (a fresh forward each) as the reference.
EMBED_TWO_SPLITS = """
import json, sys
import numpy as np
from absl import flags
from audiossl_jax import frontend
from audiossl_jax.evaluation import embed, embeddings

counts = {"load_encoder": 0, "traces": 0}
load, mean = embeddings.load_encoder, frontend.masked_time_mean
def counted_load(*a, **k):
    counts["load_encoder"] += 1
    return load(*a, **k)
def counted_mean(*a, **k):  # runs once per trace of the jitted forward
    counts["traces"] += 1
    return mean(*a, **k)
embeddings.load_encoder, frontend.masked_time_mean = counted_load, counted_mean
workdir, out = sys.argv[1], sys.argv[2]
embed.define_flags()
flags.FLAGS(["embed", f"--workdir={workdir}", "--data=synthetic_audio/tiny", "--split=train,test",
             "--crop_seconds=1.0", "--batch_size=8", f"--out={out}"])
embed.main(["embed"])
after_main = dict(counts)
task, variables = load(workdir)
cfg = embed.data_config("synthetic_audio/tiny", crop_seconds=1.0)
for split in ("train", "test"):
    alone = embeddings.embed_dataset(task, variables, cfg, split, batch_size=8)
    np.savez(out.replace("{split}", split + "_alone"), **alone)
print(json.dumps(after_main))
"""


def test_embed_several_splits_in_one_process(conformer_smoke_run, tmp_path):
    out = str(tmp_path / "emb_{split}.npz")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    proc = subprocess.run([sys.executable, "-c", EMBED_TWO_SPLITS, str(conformer_smoke_run), out],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts == {"load_encoder": 1, "traces": 1}  # one model, one compilation for both splits
    for split, size in (("train", 64), ("test", 32)):
        with np.load(out.format(split=split)) as f, np.load(out.format(split=split + "_alone")) as alone:
            assert json.loads(str(f["meta"]))["split"] == split and f["scene"].shape[0] == size
            np.testing.assert_allclose(f["scene"], alone["scene"], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(f["label"], alone["label"])
            assert len(f["class_names"]) == 12 and f["label"].max() < 12


def test_embed_output_paths():
    assert embed.output_paths("e/x.npz", "test") == {"test": embed.pathlib.Path("e/x.npz")}
    assert embed.output_paths("e/{split}.npz", "train, test@holdout:10:0") == {
        "train": embed.pathlib.Path("e/train.npz"), "test@holdout:10:0": embed.pathlib.Path("e/test@holdout:10:0.npz")}
    with pytest.raises(ValueError, match=r"put \{split\} in it"):
        embed.output_paths("e/x.npz", "train,test")
    with pytest.raises(ValueError, match="distinct"):
        embed.output_paths("e/{split}.npz", "test,test")


def test_shipped_config_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """From another working directory, the data folders and encoder configs that shipped configs name
    are the repository's (../shared/data next to the checkout, configs/ inside it)."""
    from audiossl_jax import config_finetune, config_grids, config_lib
    from audiossl_jax.evaluation import protocol

    root = pathlib.Path(__file__).resolve().parents[1]
    assert config_lib.REPO_ROOT == root
    monkeypatch.chdir(tmp_path)
    for variant in ("demo", "smoke", "smoke_conformer", "paper"):
        c = protocol.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:{variant}")
        for name, spec in c.encoders.items():
            path, _, sub = spec.split(":", 1)[1].partition(":")
            assert pathlib.Path(path).is_absolute() and pathlib.Path(path).parent == root / "configs", (name, spec)
            protocol.load_config_file(f"{path}:{sub}" if sub else path)  # loads from tmp_path
        for name, task in c.tasks.items():
            if task.get("path"):
                assert pathlib.Path(task.path) == root.parent / "shared" / "data" / task.path.rsplit("/", 1)[1]
    demo = protocol.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:demo")
    assert demo.tasks.fsdd_speaker.path == str(root.parent / "shared" / "data" / "fsdd")
    assert config_finetune.variant_config("S", "donateacry").data.path == str(root.parent / "shared" / "data" / "donateacry")
    spec = config_grids.label_fractions_config("smoke").label_fractions.pretrained
    assert spec == f"train:{root / 'configs' / 'pretrain_cfS.py'}:smoke"

"""Protocol usability: several splits embedded in one process, embeddings shared across label
columns, shipped config paths independent of the working directory, the raw scale, untrained
references of each encoder's slicing, tasks given on the command line."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from audiossl_jax import config_lib
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
    proc = subprocess.run(
        [sys.executable, "-c", EMBED_TWO_SPLITS, str(conformer_smoke_run), out],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
        "train": embed.pathlib.Path("e/train.npz"),
        "test@holdout:10:0": embed.pathlib.Path("e/test@holdout:10:0.npz"),
    }
    with pytest.raises(ValueError, match=r"put \{split\} in it"):
        embed.output_paths("e/x.npz", "train,test")
    with pytest.raises(ValueError, match="distinct"):
        embed.output_paths("e/{split}.npz", "test,test")


def test_shipped_config_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """From another working directory, the data folders and encoder configs that shipped configs name
    are the repository's (../shared/data next to the checkout, configs/ inside it)."""

    root = pathlib.Path(__file__).resolve().parents[1]
    assert config_lib.REPO_ROOT == root
    monkeypatch.chdir(tmp_path)
    for variant in ("demo", "smoke", "smoke_conformer", "paper"):
        c = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:{variant}")
        for name, spec in c.encoders.items():
            path, _, sub = spec.split(":", 1)[1].partition(":")
            assert pathlib.Path(path).is_absolute() and pathlib.Path(path).parent == root / "configs", (name, spec)
            config_lib.load_config_file(f"{path}:{sub}" if sub else path)  # loads from tmp_path
        for task in c.tasks.values():
            if task.get("path"):
                assert pathlib.Path(task.path) == root.parent / "shared" / "data" / task.path.rsplit("/", 1)[1]
    demo = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:demo")
    assert demo.tasks.fsdd_speaker.path == str(root.parent / "shared" / "data" / "fsdd")
    cry = config_lib.load_config_file("eval_finetune_cfS.py:donateacry")
    assert cry.data.path == str(root.parent / "shared" / "data" / "donateacry")
    spec = config_lib.load_config_file("grid_label_fractions.py:smoke").label_fractions.pretrained
    assert spec == f"train:{root / 'configs' / 'pretrain_cfS.py'}:smoke"


def _two_column_folder(root: pathlib.Path) -> dict[str, list[str]]:
    """12 one-second noise clips, 8 train / 4 test, with a 'digit' column (values 0, 5, 96) and a 'speaker'
    column; returns each column's values in file order."""
    import soundfile

    rng = np.random.default_rng(0)
    root.mkdir()
    columns = {
        "digit": [("0", "5", "96")[i % 3] for i in range(12)],
        "speaker": [("ann", "bob")[i % 2] for i in range(12)],
    }
    lines = ["filename,digit,speaker,split"]
    for i in range(12):
        soundfile.write(root / f"c{i:02d}.wav", rng.uniform(-0.3, 0.3, 16000).astype(np.float32), 16000)
        lines.append(f"c{i:02d}.wav,{columns['digit'][i]},{columns['speaker'][i]},{'train' if i < 8 else 'test'}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return columns


def test_a_split_is_embedded_once_for_every_label_column(tmp_path, monkeypatch):
    """Two tasks on one folder that differ only in the label column embed each split once; their labels
    are the column's values (dense indices); a new evaluator reuses the files; another crop embeds again."""
    from audiossl_jax.evaluation import embeddings, protocol

    root = pathlib.Path(__file__).resolve().parents[1]
    columns = _two_column_folder(tmp_path / "audio")
    c = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:smoke")
    c.encoders = {"untrained": f"untrained:{root / 'configs' / 'pretrain_supervised.py'}:smoke"}
    folder = dict(name="audio_folder", path=str(tmp_path / "audio"), data_dir=str(tmp_path / "dd"), crop_seconds=1.0)
    c.tasks = {
        "digit": dict(folder, label_key="digit"),
        "speaker": dict(folder, label_key="speaker"),
        "digit_short": dict(folder, label_key="digit", crop_seconds=0.5),
    }
    calls = []
    real = embeddings.embed_dataset
    monkeypatch.setattr(embeddings, "embed_dataset", lambda *a, **k: calls.append(a[3]) or real(*a, **k))

    evaluator = protocol.Evaluator(c, tmp_path / "work")
    for task in ("digit", "speaker"):
        metric, score, num_train = evaluator.frozen(protocol.Run("untrained", task, "frozen", "full", 0))
        assert metric == "accuracy" and 0.0 <= score <= 1.0 and num_train == 8
    assert calls == ["train", "test"]  # one forward pass over each split for both label columns
    digit = evaluator.embeddings("untrained", "digit", "train")
    speaker = evaluator.embeddings("untrained", "speaker", "train")
    np.testing.assert_array_equal(digit[0], speaker[0])
    names = evaluator.info("digit", "train").class_names
    assert names == ("0", "5", "96") and [names[i] for i in digit[1]] == columns["digit"][:8]
    assert [evaluator.info("speaker", "train").class_names[i] for i in speaker[1]] == columns["speaker"][:8]

    fresh = protocol.Evaluator(c, tmp_path / "work")
    np.testing.assert_array_equal(
        fresh.embeddings("untrained", "speaker", "test")[0], evaluator.embeddings("untrained", "digit", "test")[0]
    )
    assert calls == ["train", "test"]  # read back from workdir/embeddings
    fresh.embeddings("untrained", "digit_short", "test")
    assert calls == ["train", "test", "test"]  # another crop is other audio


def test_raw_scale_runs_no_reference(tmp_path):
    """config.scale='raw' plans no untrained reference (no fine-tuned untrained arm, here no untrained encoder
    at all); a results file holding every planned run is reported without running anything (hand-worked:
    temporal_gap 0.70, 0.90 -> 0.800 +- 0.100), and the normalised scale refuses the same config."""
    from audiossl_jax.evaluation import protocol, report

    root = pathlib.Path(__file__).resolve().parents[1]
    c = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:smoke")
    c.encoders = {name: spec for name, spec in c.encoders.items() if name != "untrained"}
    c.untrained, c.train_sets = "", ("full",)
    with pytest.raises(ValueError, match=r"config.untrained='': must name one of .*config.scale='raw'"):
        protocol.validate(c)
    c.scale = "raw"
    runs = protocol.plan(c)
    assert {(r.encoder, r.arm) for r in runs} == {("supervised", "frozen"), ("temporal_gap", "frozen")}
    assert len(runs) == 2 * c.replicas
    for r in runs:
        score = (0.7, 0.9)[r.replica] if r.encoder == "temporal_gap" else 0.5
        report.append_result(
            tmp_path / report.CSV_FILE, protocol.result_row(c, r, "accuracy", score, float("nan"), 64, 1.0)
        )
    (section,) = protocol.run(c, tmp_path)  # every run is in results.csv: nothing is trained or embedded
    assert section["complete"] and not (tmp_path / "encoders").exists()
    assert "| temporal_gap | 0.800 +- 0.100 | 0.80 [0.80, 0.80] |" in (tmp_path / report.TABLE_FILE).read_text()


def test_untrained_reference_has_the_slicing_of_the_encoder_it_normalises():
    """demo: Audio2Vec embeds 48-frame slices and is normalised by an untrained encoder of 48-frame slices,
    the others (96) by the 96-frame one; both references run both arms; every shipped variant passes the
    check, and the demo without its mapping is refused naming the key."""
    from audiossl_jax.evaluation import protocol, report

    root = pathlib.Path(__file__).resolve().parents[1]
    for variant in ("demo", "smoke", "smoke_conformer", "paper"):
        protocol.check_references(config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:{variant}"))
    c = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:demo")

    def slice_frames(name):
        return protocol.encoder_config(c.encoders[name]).task.slice_frames

    for name in c.encoders.keys():
        assert slice_frames(report.reference_of(c, name)) == slice_frames(name), name
    assert slice_frames("audio2vec_cbow") == slice_frames("audio2vec_sg") == 48
    assert slice_frames("temporal_gap") == slice_frames("untrained") == 96
    assert report.reference_of(c, "audio2vec_sg") == "untrained_audio2vec"
    arms = {(r.encoder, r.arm) for r in protocol.plan(c)}
    assert {("untrained", "finetuned"), ("untrained_audio2vec", "finetuned"), ("audio2vec_cbow", "frozen")} <= arms
    assert ("audio2vec_cbow", "finetuned") not in arms  # the demo's arms: frozen only
    c.untrained_for = {}
    with pytest.raises(
        ValueError,
        match=r"config.encoders.audio2vec_cbow: task.slice_frames=48, but its untrained reference 'untrained' has 96",
    ):
        protocol.check_references(c)
    c.untrained_for = {"audio2vec_cbow": "nope"}
    with pytest.raises(ValueError, match=r"config.untrained_for.audio2vec_cbow='nope': map an encoder"):
        protocol.validate(c)


def test_a_task_given_on_the_command_line_is_validated_and_run(tmp_path):
    """--task=name:key=value,... adds a task (values typed like the data config); the frozen arm runs on it;
    a malformed spec names itself and what to write; the command validates a task given that way."""
    from audiossl_jax.evaluation import protocol

    root = pathlib.Path(__file__).resolve().parents[1]
    columns = _two_column_folder(tmp_path / "audio")
    c = config_lib.load_config_file(f"{root / 'configs' / 'eval_protocol.py'}:smoke")
    c.encoders = {"untrained": f"untrained:{root / 'configs' / 'pretrain_supervised.py'}:smoke"}
    c.lock()  # as --config gives it
    protocol.add_tasks(
        c,
        [
            f"speaker:name=audio_folder,path={tmp_path / 'audio'},label_key=speaker,crop_seconds=1,data_dir={tmp_path / 'dd'}"
        ],
    )
    assert c.tasks.speaker.to_dict() == dict(
        name="audio_folder",
        path=str(tmp_path / "audio"),
        label_key="speaker",
        crop_seconds=1.0,
        data_dir=str(tmp_path / "dd"),
    )
    assert isinstance(c.tasks.speaker.crop_seconds, float)
    protocol.validate(c)
    evaluator = protocol.Evaluator(c, tmp_path / "work")
    metric, score, num_train = evaluator.frozen(protocol.Run("untrained", "speaker", "frozen", "full", 0))
    assert metric == "accuracy" and 0.0 <= score <= 1.0 and num_train == 8
    assert evaluator.info("speaker", "train").class_names == tuple(sorted(set(columns["speaker"])))
    for spec, message in (
        ("speaker:label_key=digit", r"config.tasks already has 'speaker'; change its keys with --config.tasks"),
        ("birds", r"--task='birds': write name:key=value"),
        ("birds:colour=red", r"'colour=red' is not <key>=<value> with a data config key; use one of"),
        ("birds:crop_seconds=long", r"crop_seconds='long': not a float"),
        ("birds:multi_label=yes", r"multi_label='yes': write true or false"),
    ):
        with pytest.raises(ValueError, match=message):
            protocol.add_tasks(c, [spec])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiossl_jax.evaluation.protocol",
            f"--config={root / 'configs' / 'eval_protocol.py'}:smoke",
            f"--workdir={tmp_path / 'cli'}",
            "--task=mine:name=synthetic_audio/tiny,crop_seconds=1,train_fraction=0.5",
        ],
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: config.tasks.mine.train_fraction=0.5: the protocol sets the training examples" in proc.stderr

    short = tmp_path / "my_protocol.py"  # the short config of docs/evaluation.md
    short.write_text(
        "from audiossl_jax.config_lib import load_config_file\n\n\n"
        'def get_config(variant=""):\n'
        '    c = load_config_file("eval_protocol.py:demo")\n'
        f'    c.tasks = {{"birds": dict(name="audio_folder", path="{tmp_path / "audio"}", label_key="speaker", '
        "crop_seconds=5.0)}\n"
        "    return c\n"
    )
    mine = config_lib.load_config_file(str(short))
    protocol.validate(mine)
    assert list(mine.tasks.keys()) == ["birds"] and protocol.task_data_config(mine, "birds").label_key == "speaker"

"""The Tagliasacchi protocol: the plan, resume, both recipes end to end (the report: test_report.py)."""

import pathlib

import jax
import numpy as np
import pytest
from conftest import built_once

from audiossl_jax import config_lib
from audiossl_jax.evaluation import protocol, report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke_config(variant="smoke"):
    return config_lib.load_config_file(f"{ROOT / 'configs' / 'eval_protocol.py'}:{variant}")


def test_plan_runs_both_arms_of_the_untrained_encoder():
    c = smoke_config()
    runs = protocol.plan(c)
    assert c.arms == ("frozen",)
    assert {(r.encoder, r.arm) for r in runs} == {
        ("untrained", "frozen"),
        ("untrained", "finetuned"),
        ("supervised", "frozen"),
        ("temporal_gap", "frozen"),
    }
    assert len(runs) == 4 * len(c.train_sets) * c.replicas


def run_smoke_protocol(workdir):
    """The smoke protocol run in two parts: 5 runs, then the rest (resume)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        config = smoke_config()
        protocol.run(config, workdir, max_runs=5)
        first = (workdir / report.CSV_FILE).read_text().splitlines()
        sections = protocol.run(config, workdir)
    return config, workdir, first, sections


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke protocol run (the tests only read it), once for the whole test run."""
    return built_once(tmp_path_factory, "protocol", run_smoke_protocol)


def test_resume_skips_completed_rows(smoke_run):
    config, workdir, first, _ = smoke_run
    lines = (workdir / report.CSV_FILE).read_text().splitlines()
    assert len(first) == 1 + 5 and lines[:6] == first  # the first 5 rows are kept as they were
    rows = report.read_results(workdir / report.CSV_FILE)
    keys = [(r["encoder"], r["task"], r["arm"], r["train_set"], r["replica"]) for r in rows]
    assert sorted(keys) == sorted(r.key() for r in protocol.plan(config)) and len(set(keys)) == len(keys) == 16


def test_smoke_protocol_end_to_end(smoke_run):
    config, workdir, _, sections = smoke_run
    rows = report.read_results(workdir / report.CSV_FILE)
    assert {r["num_train"] for r in rows if r["train_set"] == "subset"} == {24}
    assert {r["num_train"] for r in rows if r["train_set"] == "full"} == {64}  # synthetic_audio/tiny train
    assert all(0 <= r["score"] <= 1 and r["metric"] == "accuracy" for r in rows)
    table = (workdir / report.TABLE_FILE).read_text()
    assert "| temporal_gap |" in table and "24 random examples" in table and "incomplete" not in table
    assert (workdir / report.FIGURE_FILE).read_bytes()[:4] == b"\x89PNG"
    full = sections[0]

    def mean_score(encoder, arm):
        return np.mean([r["score"] for r in rows if (r["encoder"], r["arm"], r["train_set"]) == (encoder, arm, "full")])

    scores = np.asarray([[mean_score(e, "frozen")] for e in full["encoders"]])
    np.testing.assert_allclose(full["mean"], scores)
    zero, one = mean_score("untrained", "frozen"), mean_score("untrained", "finetuned")
    want = (scores[2, 0] - zero) / (one - zero)  # rows: untrained, supervised, temporal_gap
    assert full["encoders"][2] == "temporal_gap"
    assert full["normalised"][2, 0] == pytest.approx(want) and full["average"][2] == pytest.approx(want)


def test_fsdd_frozen_arm_with_run_directories(smoke_run, shared_data, tmp_path):
    config, workdir, _, _ = smoke_run
    c = smoke_config()
    c.encoders = {n: str(workdir / "encoders" / n) for n in config.encoders.keys()}
    c.tasks = {
        "fsdd_digits": dict(
            name="audio_folder",
            path=str(shared_data / "fsdd"),
            crop_seconds=1.0,
            train_split="train",
            eval_split="test",
            data_dir=str(tmp_path / "dd"),
        )
    }
    c.replicas, c.train_sets, c.n_train = 1, ("subset",), 500
    sections = protocol.run(c, tmp_path / "fsdd")
    rows = report.read_results(tmp_path / "fsdd" / report.CSV_FILE)
    assert len(rows) == 4 and {r["num_train"] for r in rows} == {500}  # 3 frozen + untrained fine-tuned
    assert all(r["score"] > 0.15 for r in rows if r["arm"] == "frozen")  # 10 digits: chance is 0.1
    (cached,) = (tmp_path / "fsdd" / "embeddings" / "supervised").glob("step*/*/test.npz")  # one per audio
    with np.load(cached) as f:
        assert f["scene"].shape[0] == 300 and len(set(f["key"].tolist())) == 300
    assert sections[0]["complete"]


def test_finetuned_arm_with_cnn_encoders(smoke_run, tmp_path):
    config, workdir, _, _ = smoke_run
    c = smoke_config()
    c.encoders = {n: str(workdir / "encoders" / n) for n in config.encoders.keys()}
    c.arms, c.replicas, c.train_sets = ("finetuned",), 1, ("subset",)
    sections = protocol.run(c, tmp_path)
    rows = report.read_results(tmp_path / report.CSV_FILE)
    tuned = [r for r in rows if r["arm"] == "finetuned"]
    assert sorted(r["encoder"] for r in tuned) == sorted(config.encoders.keys())
    assert [(r["encoder"], r["arm"]) for r in rows if r not in tuned] == [("untrained", "frozen")]  # the zero
    assert all(r["num_train"] == 24 and 0 <= r["score"] <= 1 for r in rows)
    run_dir = tmp_path / "finetune" / "temporal_gap" / "synthetic_tiny" / "subset" / "replica0"
    assert (run_dir / "eval_test.json").exists() and sections[0]["complete"]


def test_bad_config_names_the_key(tmp_path):
    c = smoke_config()
    c.untrained = "nope"
    with pytest.raises(ValueError, match=r"config.untrained='nope': must name one of config.encoders"):
        protocol.run(c, tmp_path)
    c = smoke_config()
    c.encoders.temporal_gap = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"config.encoders.temporal_gap=.*config.json not found"):
        protocol.run(c, tmp_path / "w")
    c = smoke_config()
    c.tasks.synthetic_tiny.train_fraction = 0.5
    with pytest.raises(ValueError, match=r"config.tasks.synthetic_tiny.train_fraction=0.5: the protocol sets"):
        protocol.run(c, tmp_path / "w2")


def test_slice_metrics_hand_worked():
    """Slice accuracy over all slices; clip accuracy = argmax of the mean of a clip's slice scores."""
    from audiossl_jax.evaluation import slices

    scores = np.array(
        [
            [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4]],  # label 0: hits 1, 0, 1
            [[0.1, 0.2, 0.7], [0.4, 0.5, 0.1], [0.5, 0.1, 0.4]],
        ]
    )  # label 2: hits 1, 0, 0
    # means: clip 0 (0.433, 0.367, 0.2) -> 0, right; clip 1 (0.333, 0.267, 0.4) -> 2, right.
    assert slices.slice_metrics(scores, np.array([0, 2])) == {"accuracy": 0.5, "clip_accuracy": 1.0}


def test_slice_starts_are_uniform_and_cut_matches_numpy():
    from audiossl_jax.evaluation import slices

    starts = slices.slice_starts(np.array([20, 10, 5]), 10, 20000, np.random.default_rng(0))
    counts = np.bincount(starts[0], minlength=11)
    assert len(counts) == 11 and counts.min() > 1650 and counts.max() < 2000  # 11 positions, ~1818 each
    assert set(starts[1]) == {0} and set(starts[2]) == {0}  # no room: the clip's start (zero-padded)
    wave = np.arange(2 * 20, dtype=np.float32).reshape(2, 20)
    length = np.array([20, 7])
    st = np.array([[3, 10], [0, 0]])
    out, lens = slices.cut(wave, length, st, 10)
    assert lens.tolist() == [10, 10, 7, 7]
    np.testing.assert_array_equal(out[0], wave[0, 3:13])
    np.testing.assert_array_equal(out[1], wave[0, 10:20])
    np.testing.assert_array_equal(out[2], np.r_[wave[1, :7], np.zeros(3)])


def test_slices_recipe_both_arms(smoke_run, tmp_path):
    """The paper's recipe end to end: the frozen arm trains the head only, the fine-tuned arm everything;
    rows carry slice and clip accuracy."""
    from audiossl_jax.evaluation import embeddings

    config, workdir, _, _ = smoke_run
    c = smoke_config()
    c.encoders = {n: str(workdir / "encoders" / n) for n in ("untrained", "temporal_gap")}
    c.recipe, c.arms, c.replicas, c.train_sets = "slices", ("frozen", "finetuned"), 1, ("subset",)
    c.slices.update(dict(total_steps=2, batch_size=8, per_clip=3, log_every_steps=1))
    sections = protocol.run(c, tmp_path)
    rows = report.read_results(tmp_path / report.CSV_FILE)
    assert len(rows) == 4 and all(r["metric"] == "accuracy" and 0 <= r["clip_score"] <= 1 for r in rows)
    assert sections[0]["complete"] and "Clip-level accuracy" in (tmp_path / report.TABLE_FILE).read_text()
    frozen_dir = tmp_path / "frozen_finetune" / "temporal_gap" / "synthetic_tiny" / "subset" / "replica0"
    tuned_dir = tmp_path / "finetune" / "temporal_gap" / "synthetic_tiny" / "subset" / "replica0"
    result = __import__("json").loads((frozen_dir / "eval_slices_test.json").read_text())
    assert result["num_slices"] % 3 == 0 and result["num_slices"] > 0
    _, before = embeddings.load_encoder(workdir / "encoders" / "temporal_gap")
    _, frozen = embeddings.load_encoder(frozen_dir)
    _, tuned = embeddings.load_encoder(tuned_dir)
    for collection in ("params", "batch_stats"):
        want = jax.tree.leaves(before[collection]["encoder"])
        for a, b in zip(jax.tree.leaves(frozen[collection]["encoder"]), want):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(tuned["params"]["encoder"]), jax.tree.leaves(before["params"]["encoder"]))
    )


def test_paper_variant_is_the_papers_recipe():
    """Random 975-ms slices, Adam 1e-4 for 100k steps, both arms, 4 replicas, 1000 examples, 50 resamples."""
    c = smoke_config("paper")
    assert (c.recipe, tuple(c.arms), c.replicas, c.n_train, c.bootstrap.resamples) == (
        "slices",
        ("frozen", "finetuned"),
        4,
        1000,
        50,
    )
    assert (c.slices.seconds, c.slices.learning_rate, c.slices.total_steps, c.slices.batch_size, c.slices.per_clip) == (
        0.975,
        1e-4,
        100_000,
        256,
        10,
    )
    assert c.encoders.supervised == f"train:{ROOT / 'configs' / 'pretrain_supervised.py'}" and len(c.tasks) == 8
    assert smoke_config("demo").recipe == "clips"  # the clip-level probe stays selectable

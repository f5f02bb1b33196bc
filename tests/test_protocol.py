"""The Tagliasacchi protocol: normalisation, bootstrap, Table I, Fig. 2, resume, end to end."""

import pathlib
import struct

import jax
import numpy as np
import pytest

from audiossl_jax.evaluation import protocol

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke_config(variant="smoke"):
    return protocol.load_config_file(f"{ROOT / 'configs' / 'eval_protocol.py'}:{variant}")


def test_normalise_and_bootstrap_match_numpy():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.2, 0.9, size=(4, 6))  # encoders x tasks
    zero, one = rng.uniform(0.1, 0.3, size=6), rng.uniform(0.7, 0.95, size=6)
    norm = protocol.normalise(scores, zero, one)
    for e in range(4):
        for t in range(6):
            assert norm[e, t] == pytest.approx((scores[e, t] - zero[t]) / (one[t] - zero[t]))
    mean, low, high = protocol.bootstrap_mean(norm, 50, seed=7, interval=0.9)
    draws = np.random.default_rng(7).integers(0, 6, size=(50, 6))
    for e in range(4):
        resampled = sorted(np.mean([norm[e, i] for i in row]) for row in draws)
        assert mean[e] == pytest.approx(np.mean(norm[e]))
        # numpy's default percentile: linear interpolation between order statistics.
        for q, got in ((5.0, low[e]), (95.0, high[e])):
            pos = q / 100 * 49
            lo_i = int(np.floor(pos))
            want = resampled[lo_i] + (pos - lo_i) * (resampled[min(lo_i + 1, 49)] - resampled[lo_i])
            assert got == pytest.approx(want)
    assert np.all(low < high)
    assert np.isnan(protocol.normalise(np.array([0.5]), np.array([0.4]), np.array([0.4]))).all()


def test_worked_example_both_arms_share_the_references():
    """Untrained frozen 0.30, from scratch 0.80; TemporalGap frozen 0.55 -> 0.50, fine-tuned 0.81 -> 1.02."""
    c = smoke_config()
    c.encoders = {"untrained": "a", "temporal_gap": "b", "supervised": "c"}
    c.arms, c.train_sets, c.replicas = ("frozen", "finetuned"), ("subset",), 1
    scores = {("untrained", "frozen"): 0.30, ("untrained", "finetuned"): 0.80,
              ("temporal_gap", "frozen"): 0.55, ("temporal_gap", "finetuned"): 0.81,
              ("supervised", "frozen"): 0.40, ("supervised", "finetuned"): 0.79}
    rows = [dict(encoder=e, task="synthetic_tiny", arm=a, train_set="subset", replica=0, seed=0, num_train=24,
                 metric="accuracy", score=v, seconds=0.0) for (e, a), v in scores.items()]
    frozen, finetuned = protocol.summarise(rows, c)
    assert frozen["encoders"] == ["untrained", "supervised", "temporal_gap"]  # supervised is an ordinary row
    np.testing.assert_allclose(frozen["normalised"][:, 0], [0.0, 0.2, 0.5])
    np.testing.assert_allclose(finetuned["normalised"][:, 0], [1.0, 0.98, 1.02])
    np.testing.assert_allclose(frozen["zero"], [0.30]) and np.testing.assert_allclose(finetuned["one"], [0.80])
    assert frozen["complete"] and finetuned["complete"]
    text = protocol.markdown_table([frozen, finetuned], c)
    assert "| temporal_gap | 0.550 +- 0.000 | 0.50 [0.50, 0.50] |" in text
    assert "| temporal_gap | 0.810 +- 0.000 | 1.02 [1.02, 1.02] |" in text
    assert text.count("References (zero / one): synthetic_tiny 0.300 / 0.800.") == 2


def test_plan_runs_both_arms_of_the_untrained_encoder():
    c = smoke_config()
    runs = protocol.plan(c)
    assert c.arms == ("frozen",)
    assert {(r.encoder, r.arm) for r in runs} == {("untrained", "frozen"), ("untrained", "finetuned"),
                                                  ("supervised", "frozen"), ("temporal_gap", "frozen")}
    assert len(runs) == 4 * len(c.train_sets) * c.replicas


def fake_rows(config, encoders, tasks, arm="frozen", train_set="full"):
    """Score 0.1 i + 0.01 j + 0.002 r for encoder i, task j, replica r; the untrained encoder's
    fine-tuned arm (the normalisation's one) scores as encoder 2 would."""
    rows = []
    for i, e in enumerate(encoders):
        for j, t in enumerate(tasks):
            for r in range(config.replicas):
                rows.append(dict(encoder=e, task=t, arm=arm, train_set=train_set, replica=r, seed=r, num_train=10,
                                 metric="accuracy", score=0.1 * i + 0.01 * j + 0.002 * r, seconds=0.0))
                if e == "untrained":
                    rows.append(dict(rows[-1], arm="finetuned", score=0.2 + 0.01 * j + 0.002 * r))
    return rows


def table_config():
    c = smoke_config()
    c.encoders = {"untrained": "a", "cbow": "b", "supervised": "c"}
    c.tasks = {"digits": c.tasks.synthetic_tiny, "speaker": c.tasks.synthetic_tiny}
    c.train_sets = ("full",)
    return c


def test_table_one_layout():
    c = table_config()
    rows = fake_rows(c, ["untrained", "cbow", "supervised"], ["digits", "speaker"])
    text = protocol.markdown_table(protocol.summarise(rows, c), c)
    lines = text.splitlines()
    start = lines.index("## frozen encoder, linear probe, full training set")
    assert lines[start + 2] == "| encoder | digits (accuracy) | speaker (accuracy) | average (normalised) |"
    assert lines[start + 3] == "|---|---|---|---|"
    # cbow: digits 0.1 + {0, 0.002}: mean 0.101, std 0.001; normalised 0.5 on both tasks.
    assert lines[start + 4].startswith("| untrained | 0.001 +- 0.001 | 0.011 +- 0.001 | 0.00 [0.00, 0.00]")
    assert lines[start + 5] == "| cbow | 0.101 +- 0.001 | 0.111 +- 0.001 | 0.50 [0.50, 0.50] |"
    assert lines[start + 6].startswith("| supervised | 0.201")
    assert "incomplete" in protocol.markdown_table(protocol.summarise(rows[:-1], c), c)


def test_average_leaves_out_tasks_where_the_baselines_tie():
    c = table_config()
    c.tasks = {"digits": c.tasks.digits, "speaker": c.tasks.speaker, "cry": c.tasks.digits}
    rows = fake_rows(c, ["untrained", "cbow", "supervised"], ["digits", "speaker"])
    for e in ["untrained", "cbow", "supervised"]:  # every encoder predicts the majority class
        rows += [dict(r, encoder=e, task="cry", score=0.786) for r in fake_rows(c, ["x"], ["cry"])]
    rows += [dict(r, encoder="untrained", arm="finetuned", task="cry", score=0.786) for r in fake_rows(c, ["x"], ["cry"])]
    section = protocol.summarise(rows, c)[0]
    assert section["left_out"] == {"cry": "untrained frozen and trained from scratch both score 0.786"}
    assert section["tasks"] == ["cry", "digits", "speaker"]  # ConfigDict keys are sorted
    norm = section["normalised"]
    assert np.isnan(norm[:, 0]).all()
    np.testing.assert_allclose(section["average"], norm[:, 1:].mean(axis=1))
    np.testing.assert_allclose(section["average"], [0, 0.5, 1])
    text = protocol.markdown_table([section], c)
    assert "| cbow | 0.786 +- 0.000 | 0.101 +- 0.001 | 0.111 +- 0.001 | 0.50 [0.50, 0.50] |" in text
    assert "Average over 2 of 3 tasks; left out, normalisation undefined: cry (untrained frozen and trained " \
           "from scratch both score 0.786)." in text
    assert section["inverted"] == [] and "Warning" not in text
    flipped = [dict(r, score=1 - r["score"]) if r["task"] == "speaker" else r for r in rows]
    text = protocol.markdown_table(protocol.summarise(flipped, c), c)
    assert "Warning: training from scratch scores below untrained frozen on speaker;" in text
    missing = protocol.summarise([r for r in rows if not (r["task"] == "digits" and r["arm"] == "finetuned")], c)
    assert missing[0]["left_out"]["digits"] == "no score of a reference yet"


def test_figure_is_a_png(tmp_path):
    c = table_config()
    rows = fake_rows(c, ["untrained", "cbow", "supervised"], ["digits", "speaker"])
    protocol.plot(protocol.summarise(rows, c), tmp_path / "fig.png")
    data = (tmp_path / "fig.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "fig.png")
    assert image.shape[:2] == (height, width) and image.std() > 0.05  # not a blank canvas


def test_figure_draws_na_as_text_warns_on_inversion_and_keeps_the_legend_outside():
    """Task 'cry' cannot be normalised (the references tie) and 'speaker' is inverted (scores flipped)."""
    import matplotlib.pyplot as plt

    c = table_config()
    c.tasks = {"digits": c.tasks.digits, "speaker": c.tasks.speaker, "cry": c.tasks.digits}
    encoders = ["untrained", "cbow", "supervised"]
    rows = fake_rows(c, encoders, ["digits", "speaker"])
    rows = [dict(r, score=1 - r["score"]) if r["task"] == "speaker" else r for r in rows]
    rows += [dict(r, encoder=e, task="cry", arm=a, score=0.5) for e in encoders for a in ("frozen", "finetuned")
             for r in fake_rows(c, ["x"], ["cry"])]
    section = protocol.summarise(rows, c)[0]
    assert section["inverted"] == ["speaker"] and list(section["left_out"]) == ["cry"]
    fig = protocol.figure([section])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["cry", "digits", "speaker", "average"]
    # One bar per encoder on digits, speaker and the average; none on 'cry' (not even of height 0).
    bars = [b for b in ax.patches if b.get_height() == b.get_height()]
    assert len(bars) == 3 * 3
    centres = sorted({round(b.get_x() + b.get_width() / 2) for b in bars})
    assert centres == [1, 2, 3]
    np.testing.assert_allclose(sorted(b.get_height() for b in bars if round(b.get_x() + b.get_width() / 2) == 1),
                               section["normalised"][:, 1])
    na = [t for t in ax.texts if t.get_text() == "n/a"]
    assert len(na) == 3 and all(round(t.get_position()[0]) == 0 for t in na)
    assert protocol.inverted_warning(section).replace(" ", "") in ax.get_title().replace("\n", "").replace(" ", "")
    assert protocol.inverted_warning(section) in protocol.markdown_table([section], c)
    fig.canvas.draw()
    legend, axes_box = ax.get_legend(), ax.get_window_extent()
    assert [t.get_text() for t in legend.get_texts()] == encoders
    assert legend.get_window_extent().x0 >= axes_box.x1  # right of the panel, clear of every bar
    plt.close(fig)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke protocol run in two parts: 5 runs, then the rest (resume)."""
    workdir = tmp_path_factory.mktemp("protocol")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        config = smoke_config()
        protocol.run(config, workdir, max_runs=5)
        first = (workdir / protocol.CSV_FILE).read_text().splitlines()
        sections = protocol.run(config, workdir)
    return config, workdir, first, sections


def test_resume_skips_completed_rows(smoke_run):
    config, workdir, first, _ = smoke_run
    lines = (workdir / protocol.CSV_FILE).read_text().splitlines()
    assert len(first) == 1 + 5 and lines[:6] == first  # the first 5 rows are kept as they were
    rows = protocol.read_results(workdir / protocol.CSV_FILE)
    keys = [(r["encoder"], r["task"], r["arm"], r["train_set"], r["replica"]) for r in rows]
    assert sorted(keys) == sorted(r.key() for r in protocol.plan(config)) and len(set(keys)) == len(keys) == 16


def test_smoke_protocol_end_to_end(smoke_run):
    config, workdir, _, sections = smoke_run
    rows = protocol.read_results(workdir / protocol.CSV_FILE)
    assert {r["num_train"] for r in rows if r["train_set"] == "subset"} == {24}
    assert {r["num_train"] for r in rows if r["train_set"] == "full"} == {64}  # synthetic_audio/tiny train
    assert all(0 <= r["score"] <= 1 and r["metric"] == "accuracy" for r in rows)
    table = (workdir / protocol.TABLE_FILE).read_text()
    assert "| temporal_gap |" in table and "24 random examples" in table and "incomplete" not in table
    assert (workdir / protocol.FIGURE_FILE).read_bytes()[:4] == b"\x89PNG"
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
    c.tasks = {"fsdd_digits": dict(name="audio_folder", path=str(shared_data / "fsdd"), crop_seconds=1.0,
                                   train_split="train", eval_split="test", data_dir=str(tmp_path / "dd"))}
    c.replicas, c.train_sets, c.n_train = 1, ("subset",), 500
    sections = protocol.run(c, tmp_path / "fsdd")
    rows = protocol.read_results(tmp_path / "fsdd" / protocol.CSV_FILE)
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
    rows = protocol.read_results(tmp_path / protocol.CSV_FILE)
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

    scores = np.array([[[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4]],   # label 0: hits 1, 0, 1
                       [[0.1, 0.2, 0.7], [0.4, 0.5, 0.1], [0.5, 0.1, 0.4]]])  # label 2: hits 1, 0, 0
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
    rows = protocol.read_results(tmp_path / protocol.CSV_FILE)
    assert len(rows) == 4 and all(r["metric"] == "accuracy" and 0 <= r["clip_score"] <= 1 for r in rows)
    assert sections[0]["complete"] and "Clip-level accuracy" in (tmp_path / protocol.TABLE_FILE).read_text()
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
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(tuned["params"]["encoder"]), jax.tree.leaves(before["params"]["encoder"])))


def test_paper_variant_is_the_papers_recipe():
    """Random 975-ms slices, Adam 1e-4 for 100k steps, both arms, 4 replicas, 1000 examples, 50 resamples."""
    c = smoke_config("paper")
    assert (c.recipe, tuple(c.arms), c.replicas, c.n_train, c.bootstrap.resamples) == (
        "slices", ("frozen", "finetuned"), 4, 1000, 50)
    assert (c.slices.seconds, c.slices.learning_rate, c.slices.total_steps, c.slices.batch_size, c.slices.per_clip) == (
        0.975, 1e-4, 100_000, 256, 10)
    assert c.encoders.supervised == f"train:{ROOT / 'configs' / 'pretrain_supervised.py'}" and len(c.tasks) == 8
    assert smoke_config("demo").recipe == "clips"  # the clip-level probe stays selectable

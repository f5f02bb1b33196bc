"""The protocol's report without JAX: results file, eq. (1), bootstrap, Table I, Fig. 2."""

import json
import pathlib
import struct
import subprocess
import sys
import textwrap

import ml_collections
import numpy as np
import pytest

from audiossl_jax.evaluation import report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke_config():
    """The report's keys of ``configs/eval_protocol.py:smoke``, written out (that file imports the
    training configs, which load JAX)."""
    return ml_collections.ConfigDict(
        dict(
            encoders={"untrained": "u", "supervised": "s", "temporal_gap": "t"},
            untrained="untrained",
            tasks={"synthetic_tiny": dict(name="synthetic_audio/tiny", crop_seconds=2.0)},
            arms=("frozen",),
            train_sets=("full", "subset"),
            replicas=2,
            n_train=24,
            bootstrap=dict(resamples=50, seed=0, interval=0.95),
        )
    )


def test_report_needs_no_jax(tmp_path):
    """A fresh interpreter reads a hand-written results.csv (the worked example below, one replica) and
    writes the table, figure and summary without loading JAX or TensorFlow."""
    (tmp_path / report.CSV_FILE).write_text(
        textwrap.dedent("""\
        encoder,task,arm,train_set,replica,seed,num_train,metric,score,clip_score,seconds
        untrained,digits,frozen,subset,0,0,24,accuracy,0.300000,nan,1.00
        untrained,digits,finetuned,subset,0,0,24,accuracy,0.800000,nan,1.00
        temporal_gap,digits,frozen,subset,0,0,24,accuracy,0.550000,nan,1.00
        """)
    )
    code = textwrap.dedent(f"""\
        import pathlib, sys
        import ml_collections
        from audiossl_jax.evaluation import report
        c = ml_collections.ConfigDict(dict(encoders={{"untrained": "u", "temporal_gap": "t"}}, untrained="untrained",
            tasks={{"digits": {{}}}}, arms=("frozen",), train_sets=("subset",), replicas=1, n_train=24,
            bootstrap=dict(resamples=10, seed=0, interval=0.95)))
        sections = report.write_reports(c, pathlib.Path({str(tmp_path)!r}))
        print(sections[0]["normalised"].ravel().tolist())
        print(sorted(m for m in ("jax", "tensorflow", "flax") if m in sys.modules))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    normalised, loaded = out.stdout.strip().splitlines()[-2:]
    np.testing.assert_allclose(json.loads(normalised), [0.0, 0.5])  # (0.55 - 0.30) / (0.80 - 0.30)
    assert loaded == "[]"
    table = (tmp_path / report.TABLE_FILE).read_text()
    assert "| temporal_gap | 0.550 +- 0.000 | 0.50 [0.50, 0.50] |" in table
    assert "References of untrained (zero / one): digits 0.300 / 0.800." in table
    assert (tmp_path / report.FIGURE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / report.SUMMARY_FILE).exists()


def test_results_file_round_trip_and_foreign_columns(tmp_path):
    """append_result writes the header once; read_results types the numbers and refuses another file's columns."""
    path = tmp_path / report.CSV_FILE
    assert report.read_results(path) == []
    row = dict(
        encoder="e",
        task="t",
        arm="frozen",
        train_set="full",
        replica=1,
        seed=3,
        num_train=10,
        metric="accuracy",
        score="0.250000",
        clip_score="nan",
        seconds="1.50",
    )
    report.append_result(path, row)
    report.append_result(path, dict(row, replica=2))
    rows = report.read_results(path)
    assert [r["replica"] for r in rows] == [1, 2] and rows[0]["score"] == 0.25 and np.isnan(rows[0]["clip_score"])
    assert path.read_text().count("encoder,task") == 1
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"has columns \['a', 'b'\], not the protocol's"):
        report.read_results(path)


def test_normalise_and_bootstrap_match_numpy():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.2, 0.9, size=(4, 6))  # encoders x tasks
    zero, one = rng.uniform(0.1, 0.3, size=6), rng.uniform(0.7, 0.95, size=6)
    norm = report.normalise(scores, zero, one)
    for e in range(4):
        for t in range(6):
            assert norm[e, t] == pytest.approx((scores[e, t] - zero[t]) / (one[t] - zero[t]))
    mean, low, high = report.bootstrap_mean(norm, 50, seed=7, interval=0.9)
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
    assert np.isnan(report.normalise(np.array([0.5]), np.array([0.4]), np.array([0.4]))).all()


def one_task_rows(scores, train_set):
    """Result rows of task synthetic_tiny, replica 0, from {(encoder, arm): score}."""
    return [
        dict(encoder=e, task="synthetic_tiny", arm=a, train_set=train_set, replica=0, metric="accuracy", score=v)
        for (e, a), v in scores.items()
    ]


def test_worked_example_both_arms_share_the_references():
    """Untrained frozen 0.30, from scratch 0.80; TemporalGap frozen 0.55 -> 0.50, fine-tuned 0.81 -> 1.02."""
    c = smoke_config()
    c.encoders = {"untrained": "a", "temporal_gap": "b", "supervised": "c"}
    c.arms, c.train_sets, c.replicas = ("frozen", "finetuned"), ("subset",), 1
    scores = {
        ("untrained", "frozen"): 0.30,
        ("untrained", "finetuned"): 0.80,
        ("temporal_gap", "frozen"): 0.55,
        ("temporal_gap", "finetuned"): 0.81,
        ("supervised", "frozen"): 0.40,
        ("supervised", "finetuned"): 0.79,
    }
    rows = one_task_rows(scores, "subset")
    frozen, finetuned = report.summarise(rows, c)
    assert frozen["encoders"] == ["untrained", "supervised", "temporal_gap"]  # supervised is an ordinary row
    np.testing.assert_allclose(frozen["normalised"][:, 0], [0.0, 0.2, 0.5])
    np.testing.assert_allclose(finetuned["normalised"][:, 0], [1.0, 0.98, 1.02])
    np.testing.assert_allclose(frozen["zero"], [[0.30]] * 3)  # [E, T]: every row's reference is untrained
    np.testing.assert_allclose(finetuned["one"], [[0.80]] * 3)
    assert frozen["complete"] and finetuned["complete"]
    text = report.markdown_table([frozen, finetuned], c)
    assert "| temporal_gap | 0.550 +- 0.000 | 0.50 [0.50, 0.50] |" in text
    assert "| temporal_gap | 0.810 +- 0.000 | 1.02 [1.02, 1.02] |" in text
    assert text.count("References of untrained (zero / one): synthetic_tiny 0.300 / 0.800.") == 2


def fake_rows(config, encoders, tasks, arm="frozen", train_set="full"):
    """Score 0.1 i + 0.01 j + 0.002 r for encoder i, task j, replica r; the untrained encoder's
    fine-tuned arm (the normalisation's one) scores as encoder 2 would."""
    rows = []
    for i, e in enumerate(encoders):
        for j, t in enumerate(tasks):
            for r in range(config.replicas):
                rows.append(
                    dict(
                        encoder=e,
                        task=t,
                        arm=arm,
                        train_set=train_set,
                        replica=r,
                        seed=r,
                        num_train=10,
                        metric="accuracy",
                        score=0.1 * i + 0.01 * j + 0.002 * r,
                        seconds=0.0,
                    )
                )
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
    text = report.markdown_table(report.summarise(rows, c), c)
    lines = text.splitlines()
    start = lines.index("## frozen encoder, linear probe, full training set")
    assert lines[start + 2] == "| encoder | digits (accuracy) | speaker (accuracy) | average (normalised) |"
    assert lines[start + 3] == "|---|---|---|---|"
    # cbow: digits 0.1 + {0, 0.002}: mean 0.101, std 0.001; normalised 0.5 on both tasks.
    assert lines[start + 4].startswith("| untrained | 0.001 +- 0.001 | 0.011 +- 0.001 | 0.00 [0.00, 0.00]")
    assert lines[start + 5] == "| cbow | 0.101 +- 0.001 | 0.111 +- 0.001 | 0.50 [0.50, 0.50] |"
    assert lines[start + 6].startswith("| supervised | 0.201")
    assert "incomplete" in report.markdown_table(report.summarise(rows[:-1], c), c)


def test_average_leaves_out_tasks_where_the_baselines_tie():
    c = table_config()
    c.tasks = {"digits": c.tasks.digits, "speaker": c.tasks.speaker, "cry": c.tasks.digits}
    rows = fake_rows(c, ["untrained", "cbow", "supervised"], ["digits", "speaker"])
    for e in ["untrained", "cbow", "supervised"]:  # every encoder predicts the majority class
        rows += [dict(r, encoder=e, task="cry", score=0.786) for r in fake_rows(c, ["x"], ["cry"])]
    rows += [
        dict(r, encoder="untrained", arm="finetuned", task="cry", score=0.786) for r in fake_rows(c, ["x"], ["cry"])
    ]
    section = report.summarise(rows, c)[0]
    assert section["left_out"] == {"untrained": {"cry": "untrained frozen and trained from scratch both score 0.786"}}
    assert section["tasks"] == ["cry", "digits", "speaker"]  # ConfigDict keys are sorted
    norm = section["normalised"]
    assert np.isnan(norm[:, 0]).all()
    np.testing.assert_allclose(section["average"], norm[:, 1:].mean(axis=1))
    np.testing.assert_allclose(section["average"], [0, 0.5, 1])
    text = report.markdown_table([section], c)
    assert "| cbow | 0.786 +- 0.000 | 0.101 +- 0.001 | 0.111 +- 0.001 | 0.50 [0.50, 0.50] |" in text
    assert (
        "Average of the rows normalised by untrained over 2 of 3 tasks; left out, normalisation undefined: "
        "cry (untrained frozen and trained from scratch both score 0.786)." in text
    )
    assert section["inverted"] == {} and "Warning" not in text
    flipped = [dict(r, score=1 - r["score"]) if r["task"] == "speaker" else r for r in rows]
    text = report.markdown_table(report.summarise(flipped, c), c)
    assert "Warning: training from scratch scores below untrained frozen on speaker;" in text
    missing = report.summarise([r for r in rows if not (r["task"] == "digits" and r["arm"] == "finetuned")], c)
    assert missing[0]["left_out"]["untrained"]["digits"] == "no score of a reference yet"


def test_figure_is_a_png(tmp_path):
    c = table_config()
    rows = fake_rows(c, ["untrained", "cbow", "supervised"], ["digits", "speaker"])
    report.plot(report.summarise(rows, c), tmp_path / "fig.png")
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
    rows += [
        dict(r, encoder=e, task="cry", arm=a, score=0.5)
        for e in encoders
        for a in ("frozen", "finetuned")
        for r in fake_rows(c, ["x"], ["cry"])
    ]
    section = report.summarise(rows, c)[0]
    assert section["inverted"] == {"untrained": ["speaker"]} and list(section["left_out"]["untrained"]) == ["cry"]
    fig = report.figure([section])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["cry", "digits", "speaker", "average"]
    # One bar per encoder on digits, speaker and the average; none on 'cry' (not even of height 0).
    bars = [b for b in ax.patches if b.get_height() == b.get_height()]
    assert len(bars) == 3 * 3
    centres = sorted({round(b.get_x() + b.get_width() / 2) for b in bars})
    assert centres == [1, 2, 3]
    np.testing.assert_allclose(
        sorted(b.get_height() for b in bars if round(b.get_x() + b.get_width() / 2) == 1), section["normalised"][:, 1]
    )
    na = [t for t in ax.texts if t.get_text() == "n/a"]
    assert len(na) == 3 and all(round(t.get_position()[0]) == 0 for t in na)
    assert report.inverted_warning(section).replace(" ", "") in ax.get_title().replace("\n", "").replace(" ", "")
    assert report.inverted_warning(section) in report.markdown_table([section], c)
    fig.canvas.draw()
    legend, axes_box = ax.get_legend(), ax.get_window_extent()
    assert [t.get_text() for t in legend.get_texts()] == encoders
    assert legend.get_window_extent().x0 >= axes_box.x1  # right of the panel, clear of every bar
    plt.close(fig)


def test_raw_scale_needs_no_reference(tmp_path):
    """config.scale='raw': a results file with no untrained row at all gives a complete table of raw
    scores. Hand-worked: cbow digits 0.60, 0.70 (0.650 +- 0.050), speaker 0.90, 0.80 (0.850 +- 0.050),
    average 0.75; temporal_gap digits 0.50, 0.50, speaker 0.70, 0.90 (0.800 +- 0.100), average 0.65. Two
    tasks resampled: the resampled means are 0.65, 0.75 or 0.85 (cbow), so the interval is [0.65, 0.85]."""
    c = smoke_config()
    c.encoders = {"cbow": "a", "temporal_gap": "b"}
    c.untrained, c.scale, c.train_sets = "", "raw", ("full",)
    c.tasks = {"digits": {}, "speaker": {}}
    (tmp_path / report.CSV_FILE).write_text(
        textwrap.dedent("""\
        encoder,task,arm,train_set,replica,seed,num_train,metric,score,clip_score,seconds
        cbow,digits,frozen,full,0,0,24,accuracy,0.600000,nan,1.00
        cbow,digits,frozen,full,1,1,24,accuracy,0.700000,nan,1.00
        cbow,speaker,frozen,full,0,0,24,accuracy,0.900000,nan,1.00
        cbow,speaker,frozen,full,1,1,24,accuracy,0.800000,nan,1.00
        temporal_gap,digits,frozen,full,0,0,24,accuracy,0.500000,nan,1.00
        temporal_gap,digits,frozen,full,1,1,24,accuracy,0.500000,nan,1.00
        temporal_gap,speaker,frozen,full,0,0,24,accuracy,0.700000,nan,1.00
        temporal_gap,speaker,frozen,full,1,1,24,accuracy,0.900000,nan,1.00
        """)
    )
    assert report.references(c) == [] and report.encoder_order(c) == ["cbow", "temporal_gap"]
    (section,) = report.write_reports(c, tmp_path)
    assert section["complete"] and section["scale"] == "raw" and section["untrained"] == []
    np.testing.assert_allclose(section["values"], [[0.65, 0.85], [0.50, 0.80]])
    np.testing.assert_allclose(section["average"], [0.75, 0.65])
    np.testing.assert_allclose([section["low"][0], section["high"][0]], [0.65, 0.85])
    assert np.isnan(section["zero"]).all() and np.isnan(section["normalised"]).all() and not section["left_out"]
    table = (tmp_path / report.TABLE_FILE).read_text()
    assert "| encoder | digits (accuracy) | speaker (accuracy) | average (raw) |" in table
    assert "| cbow | 0.650 +- 0.050 | 0.850 +- 0.050 | 0.75 [0.65, 0.85] |" in table
    assert "| temporal_gap | 0.500 +- 0.000 | 0.800 +- 0.100 | 0.65 [" in table
    assert "References" not in table and "normalised score" not in table and "not normalised" in table
    assert json.loads((tmp_path / report.SUMMARY_FILE).read_text())[0]["scale"] == "raw"
    fig = report.figure([section])
    assert fig.axes[0].get_ylabel() == "raw score"
    heights = sorted(b.get_height() for b in fig.axes[0].patches)
    np.testing.assert_allclose(heights, sorted([0.65, 0.85, 0.75, 0.50, 0.80, 0.65]))


def test_each_encoder_is_normalised_by_its_own_untrained_reference():
    """untrained (96-frame slices) normalises supervised: zero 0.30, one 0.80, supervised 0.55 -> 0.50;
    untrained_a2v (48 frames) normalises cbow: zero 0.20, one 0.60, cbow 0.50 -> 0.75 (not the 0.40 the
    other reference would give). Both references run both arms; both rows are 0 in the frozen table."""
    c = smoke_config()
    c.encoders = {"untrained": "a", "untrained_a2v": "b", "supervised": "c", "cbow": "d"}
    c.untrained_for = {"cbow": "untrained_a2v"}
    c.train_sets, c.replicas = ("full",), 1
    scores = {
        ("untrained", "frozen"): 0.30,
        ("untrained", "finetuned"): 0.80,
        ("untrained_a2v", "frozen"): 0.20,
        ("untrained_a2v", "finetuned"): 0.60,
        ("supervised", "frozen"): 0.55,
        ("cbow", "frozen"): 0.50,
    }
    rows = one_task_rows(scores, "full")
    assert report.references(c) == ["untrained", "untrained_a2v"]
    assert [report.reference_of(c, e) for e in ("untrained_a2v", "supervised", "cbow")] == [
        "untrained_a2v",
        "untrained",
        "untrained_a2v",
    ]
    (section,) = report.summarise(rows, c)
    assert section["encoders"] == ["untrained", "untrained_a2v", "cbow", "supervised"] and section["complete"]
    assert section["references"] == ["untrained", "untrained_a2v", "untrained_a2v", "untrained"]
    np.testing.assert_allclose(section["normalised"][:, 0], [0.0, 0.0, 0.75, 0.5])
    np.testing.assert_allclose(section["average"], [0.0, 0.0, 0.75, 0.5])
    np.testing.assert_allclose(section["zero"][:, 0], [0.30, 0.20, 0.20, 0.30])
    text = report.markdown_table([section], c)
    assert "| cbow | 0.500 +- 0.000 | 0.75 [0.75, 0.75] |" in text
    assert "References of untrained_a2v (zero / one): synthetic_tiny 0.200 / 0.600." in text
    assert "Untrained references: untrained for supervised; untrained_a2v for cbow." in text
    assert not report.summarise(rows[:-3] + rows[-2:], c)[0]["complete"]  # untrained_a2v fine-tuned missing

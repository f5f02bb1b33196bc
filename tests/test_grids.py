"""Grids of runs (evaluation/grids.py): the sweep with validation selection, Table 1's label
fractions, ESC-50 cross-validation and Fig. 2's ablations, against hand-worked examples."""

import csv
import json
import math
import os
import pathlib

import matplotlib.image
import numpy as np
import pytest

from audiossl_jax import config_finetune, config_grids, config_lib
from audiossl_jax.evaluation import grids

REPO = pathlib.Path(__file__).resolve().parents[1]


def grid_config(spec):
    return config_lib.load_config_file(str(REPO / "configs" / spec))


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def check_figure(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image[..., :3].std() > 0.01  # a PNG, not blank


def test_run_points_runs_each_point_once_and_resumes(tmp_path):
    calls = []

    def run_point(point, directory):
        calls.append((point.name, directory))
        return {"score": point.overrides["x"] * 2}

    points = [grids.Point("a", {"x": 1}), grids.Point("b", {"x": 2.5})]
    assert grids.run_points(points, tmp_path, run_point) == {"a": {"score": 2.0}, "b": {"score": 5.0}}
    assert calls == [("a", tmp_path / "a"), ("b", tmp_path / "b")]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text()) == {"score": 5.0}
    (tmp_path / "a" / "metrics.json").unlink()  # as if interrupted while running point a
    assert grids.run_points(points, tmp_path, run_point)["b"] == {"score": 5.0}
    assert [c[0] for c in calls] == ["a", "b", "a"]
    with pytest.raises(ValueError, match="repeat a name"):
        grids.run_points(points + [grids.Point("a", {})], tmp_path, run_point)
    with pytest.raises(ValueError, match="'a/b'"):
        grids.run_points([grids.Point("a/b", {})], tmp_path, run_point)


def test_override_and_select():
    c = grid_config("grid_sweep.py:smoke").base
    got = grids.override(c, {"schedule.peak_learning_rate": 0.5, "task.output_dropout": 0.3})
    assert got.schedule.peak_learning_rate == 0.5 and got.task.output_dropout == 0.3
    assert c.schedule.peak_learning_rate != 0.5  # a copy
    with pytest.raises(ValueError, match=r"'task.dropuot'.*no key 'dropuot'"):
        grids.override(c, {"task.dropuot": 0.1})
    with pytest.raises(ValueError, match="no section 'tsak'"):
        grids.override(c, {"tsak.output_dropout": 0.1})
    assert grids.select([0.5, 0.7, 0.7, 0.6]) == 1  # tie between points 1 and 2: the first
    assert grids.select([float("nan"), 0.2, 0.1]) == 1
    with pytest.raises(ValueError, match="no finite validation score"):
        grids.select([float("nan")])


def sweep_fake(val, test, calls):
    """Fake runner: validation score by (lr, dropout) from ``val``, test score ``test``."""

    def runner(config, directory, splits):
        calls.append((directory.name, tuple(splits)))
        key = (config.schedule.peak_learning_rate, config.task.output_dropout)
        score = val[key] if splits[0] != config.data.eval_split else test[key]
        return {f"{splits[0]}/accuracy": score, "num_train": 10.0}

    return runner


def test_sweep_selects_on_validation_and_reports_the_selected_test_score_only(tmp_path):
    c = grid_config("grid_sweep.py:smoke")
    c.sweep.peak_learning_rates, c.sweep.output_dropouts, c.sweep.val_split = (1e-3, 3e-3), (0.0, 0.2), "validation"
    # Grid order: (1e-3, 0), (1e-3, 0.2), (3e-3, 0), (3e-3, 0.2). Points 2 and 3 tie at 0.7: the
    # first wins; point 4 has the best test score but is never scored on test.
    val = {(1e-3, 0.0): 0.5, (1e-3, 0.2): 0.7, (3e-3, 0.0): 0.7, (3e-3, 0.2): 0.6}
    test = {(1e-3, 0.0): 0.1, (1e-3, 0.2): 0.65, (3e-3, 0.0): 0.2, (3e-3, 0.2): 0.99}
    calls = []
    summary = grids.run_sweep(c, tmp_path, sweep_fake(val, test, calls))
    names = [p.name for p in grids.sweep_points(c)]
    assert names == [
        "lr0.001_steps4_bs8_drop0",
        "lr0.001_steps4_bs8_drop0.2",
        "lr0.003_steps4_bs8_drop0",
        "lr0.003_steps4_bs8_drop0.2",
    ]
    assert calls == [(n, ("validation",)) for n in names] + [(names[1], ("test",))]
    assert summary["selected"] == names[1] and summary["validation"] == 0.7 and summary["test"] == 0.65
    rows = read_csv(tmp_path / "table.csv")
    assert [float(r["validation"]) for r in rows] == [0.5, 0.7, 0.7, 0.6]
    assert [r["test"] for r in rows] == ["", "0.65", "", ""] and [r["selected"] for r in rows] == ["", "yes", "", ""]
    assert [float(r["peak_learning_rate"]) for r in rows] == [1e-3, 1e-3, 3e-3, 3e-3]
    md = (tmp_path / "table.md").read_text()
    assert f"| {names[1]} | 0.001 | 4 | 8 | 0.2000 | 0.7000 | 0.6500 | yes |" in md
    assert "0.99" not in md and f"{names[1]}, validation 0.7000; test accuracy on 'test': 0.6500" in md
    assert not (tmp_path / names[3] / "test_metrics.json").exists()
    check_figure(tmp_path / "figure.png")
    grids.run_sweep(c, tmp_path, sweep_fake(val, test, calls))  # a rerun runs nothing
    assert len(calls) == 5


def test_cv_reports_the_five_folds_and_their_mean(tmp_path):
    c = grid_config("grid_esc50_cv.py")
    values = {1: 0.80, 2: 0.85, 3: 0.90, 4: 0.75, 5: 0.95}
    seen = []

    def runner(config, directory, splits):
        seen.append((directory.name, config.data.train_split, config.data.eval_split, tuple(splits)))
        return {f"{splits[0]}/accuracy": values[int(directory.name[-1])], "num_train": 1600.0}

    summary = grids.run_cv(c, tmp_path, runner)
    assert seen == [(f"fold{k}", f"train@cv:{k}", f"test@cv:{k}", (f"test@cv:{k}",)) for k in range(1, 6)]
    assert summary["values"] == [0.80, 0.85, 0.90, 0.75, 0.95] and math.isclose(summary["mean"], 0.85)
    rows = read_csv(tmp_path / "table.csv")
    assert [r["fold"] for r in rows] == ["1", "2", "3", "4", "5", "mean"]
    assert math.isclose(float(rows[-1]["score"]), 0.85)
    assert "mean 0.8500 (std 0.0707) over 0.8000, 0.8500, 0.9000, 0.7500, 0.9500" in (tmp_path / "table.md").read_text()
    check_figure(tmp_path / "figure.png")


def test_label_fractions_are_table_1_and_the_balanced_point_is_the_balanced_set(tmp_path):
    assert config_finetune.LABEL_FRACTIONS == {"Balanced (20k)": 1, "60k": 3, "200k": 10, "600k": 30, "Full (~2M)": 100}
    c = grid_config("grid_label_fractions.py")
    assert c.base.model.model_dim == 768 and c.balanced.data.name == "audioset_balanced"  # cf_L, as the paper
    c.label_fractions.pretrained = str(tmp_path / "cfL")
    seen = {}

    def runner(config, directory, splits):
        d = config.data
        seen[directory.name] = (d.name, d.train_fraction, config.task.pretrained_workdir, tuple(splits))
        clips = 20_000 if d.name == "audioset_balanced" else round(d.train_fraction * 2_000_000)
        score = 0.1 * math.log10(clips) - (0.2 if config.task.pretrained_workdir is None else 0.0)
        return {f"{splits[0]}/mAP": score, "num_train": float(clips)}

    summary = grids.run_label_fractions(c, tmp_path / "grid", runner)
    pre = str(tmp_path / "cfL")
    assert seen["pretrained_1pct"] == ("audioset_balanced", 1.0, pre, ("test",))
    assert seen["scratch_1pct"] == ("audioset_balanced", 1.0, None, ("test",))
    assert seen["pretrained_3pct"] == ("audioset", 0.03, pre, ("test",))
    assert seen["scratch_100pct"] == ("audioset", 1.0, None, ("test",))
    assert len(seen) == 10
    rows = read_csv(tmp_path / "grid" / "table.csv")
    assert [r["column"] for r in rows] == ["Balanced (20k)", "60k", "200k", "600k", "Full (~2M)"]
    assert [int(r["labelled_clips"]) for r in rows] == [20_000, 60_000, 200_000, 600_000, 2_000_000]
    np.testing.assert_allclose([float(r["pretrained"]) for r in rows], 0.1 * np.log10([2e4, 6e4, 2e5, 6e5, 2e6]))
    np.testing.assert_allclose([float(r["scratch"]) for r in rows], 0.1 * np.log10([2e4, 6e4, 2e5, 6e5, 2e6]) - 0.2)
    assert summary["rows"][0]["percent"] == 1
    check_figure(tmp_path / "grid" / "figure.png")


def test_fig2_ablation_varies_one_factor_at_a_time(tmp_path):
    c = grid_config("grid_fig2.py")
    points = grids.ablation_points(c)
    assert len(points) == 1 + 3 + 3 + 4  # the baseline is shared by the three panels
    pretrained, finetuned = [], []

    def pretrainer(config, directory):
        pretrained.append(
            (
                directory.parent.name,
                config.data.train_fraction,
                config.model.num_blocks,
                config.model.num_heads,
                config.model.model_dim,
            )
        )

    def runner(config, directory, splits):
        m = config.model
        finetuned.append((directory.parent.name, directory.name, config.data.name, config.task.pretrained_workdir))
        base = 0.4 if directory.name == "full" else 0.3
        score = base + 0.001 * m.num_blocks - 0.001 * abs(m.num_heads - 12)
        return {f"{splits[0]}/mAP": score, "num_train": 1.0}

    summary = grids.run_ablation(c, tmp_path, runner, pretrainer)
    assert pretrained[0] == ("data1_blocks12_heads12", 1.0, 12, 12, 768)
    assert {p[1:4] for p in pretrained} == {
        (1.0, 12, 12),
        (0.1, 12, 12),
        (0.3, 12, 12),
        (0.6, 12, 12),
        (1.0, 8, 12),
        (1.0, 16, 12),
        (1.0, 20, 12),
        (1.0, 12, 4),
        (1.0, 12, 8),
        (1.0, 12, 16),
        (1.0, 12, 24),
    }
    assert (
        "data1_blocks20_heads12",
        "balanced",
        "audioset_balanced",
        str(tmp_path / "data1_blocks20_heads12" / "pretrain"),
    ) in finetuned
    assert len(finetuned) == 22
    heads = summary["panels"]["num_heads"]
    assert heads["full"]["x"] == [4, 8, 12, 16, 24]
    np.testing.assert_allclose(heads["full"]["y"], [0.404, 0.408, 0.412, 0.408, 0.4])
    assert summary["panels"]["pretrain_fraction"]["balanced"]["x"] == [0.1, 0.3, 0.6, 1.0]
    assert summary["panels"]["num_blocks"]["balanced"]["x"] == [8, 12, 16, 20]
    check_figure(tmp_path / "figure.png")


def test_paper_grid_configs_name_the_right_splits_and_metrics():
    for task in config_finetune.PAPER_TASKS:
        c = grid_config(f"grid_sweep.py:{task}")
        grids.validate(c)
        assert c.metric == config_grids.TASK_METRICS[task]
        if task == "magnatagatune":  # the 12:1:3 split has a validation part
            assert c.sweep.val_split == "validation" and c.base.data.train_split == "train"
        else:  # a seeded 10% hold-out of the training split (Kinetics' 'validation' is its test split)
            train = config_lib.load_config_file(f"eval_finetune_cfS.py:{task}").data.train_split
            assert (c.sweep.val_split, c.base.data.train_split) == (f"{train}@holdout:10:0", f"{train}@rest:10:0")
        assert c.base.model.model_dim == (768 if task.startswith("audioset") else 256)
    audioset = grid_config("grid_sweep.py:audioset")
    assert audioset.sweep.batch_sizes == (audioset.base.batch_size,)  # the paper fixes it (640)
    assert grid_config("grid_sweep.py:esc50:L").base.model.model_dim == 768
    with pytest.raises(ValueError, match="':S' or ':L'"):
        grid_config("grid_sweep.py:esc5")
    c = grid_config("grid_esc50_cv.py:L")
    assert c.base.data.name == "esc50" and c.base.model.model_dim == 768 and tuple(c.cv.folds) == (1, 2, 3, 4, 5)
    assert grids.cv_points(c)[1].overrides == {"data.train_split": "train@cv:2", "data.eval_split": "test@cv:2"}
    c.grid = "bogus"
    with pytest.raises(ValueError, match="config.grid='bogus'"):
        grids.validate(c)
    c = grid_config("grid_label_fractions.py:smoke")
    c.label_fractions.balanced_percent = 50  # the smoke grid has no Balanced set
    with pytest.raises(ValueError, match="config.label_fractions.balanced_percent=50: .*config.balanced"):
        grids.validate(c)


def test_cv_end_to_end_through_main(tmp_path):
    """Two folds of the smoke conformer on the built-in data (train on one split, test on the
    other, then the reverse), fine-tuned for real through ``audiossl_jax.main``'s grid mode."""
    from audiossl_jax import main

    grid = tmp_path / "grid"
    cwd = os.getcwd()
    os.chdir(REPO)  # config paths are relative to the repository, as on the command line
    try:
        main.FLAGS(["main", "--config=configs/grid_esc50_cv.py:smoke", f"--workdir={grid}"])
        main.FLAGS.config.base.total_steps = main.FLAGS.config.base.checkpoint.every_steps = 2
        main.main(["main"])
    finally:
        os.chdir(cwd)
    summary = json.loads((grid / "summary.json").read_text())
    folds = [json.loads((grid / f"fold{k}" / "metrics.json").read_text()) for k in (1, 2)]
    assert [f["num_train"] for f in folds] == [64, 32]  # synthetic_audio/tiny: 64 train, 32 test clips
    assert summary["values"] == [folds[0]["test/accuracy"], folds[1]["train/accuracy"]]
    assert math.isclose(summary["mean"], np.mean(summary["values"]))
    # The accuracies are counts of 32 and 64 clips.
    assert (summary["values"][0] * 32).is_integer() and (summary["values"][1] * 64).is_integer()
    assert json.loads((grid / "fold2" / "config.json").read_text())["data"]["train_split"] == "test"
    # A finished point is only restored: scoring it again gives the same number, and more splits.
    c = grids.override(main.FLAGS.config.base, {"data.train_split": "train", "data.eval_split": "test"})
    again = grids.finetune_run(c, grid / "fold1", ("test", "train"))
    assert again["test/accuracy"] == folds[0]["test/accuracy"] and "train/accuracy" in again
    assert "| mean |" in (grid / "table.md").read_text()
    check_figure(grid / "figure.png")

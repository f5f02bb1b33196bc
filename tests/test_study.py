"""The pre-training study (issue 15): the logmel mean+std baseline, budget -> steps, rows, resume."""

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from audiossl_jax import config_lib, frontend
from audiossl_jax.evaluation import baselines, protocol, report, study

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke_config():
    return config_lib.load_config_file(f"{ROOT / 'configs' / 'study_small.py'}:smoke")


def test_logmel_stats_match_numpy():
    """Mean and std over the n // hop valid frames of each clip's log-mels, re-derived in NumPy."""
    cfg = frontend.PRESETS[baselines.FRONTEND_PRESET]
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.1, (3, 16000)).astype(np.float32)
    length = np.array([16000, 9000, 2500], np.int32)
    got = np.asarray(baselines.logmel_stats(jnp.asarray(wave), jnp.asarray(length), cfg))
    assert got.shape == (3, 2 * cfg.n_mels)
    for b in range(3):
        clip = np.where(np.arange(16000) < length[b], wave[b], 0.0)
        logmel = np.asarray(frontend.logmel(jnp.asarray(clip[None]), cfg))[0, : length[b] // cfg.hop_length]
        want = np.concatenate([logmel.mean(0), logmel.std(0)])
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-4)


def test_budget_and_seed_drive_every_encoder():
    c = smoke_config()
    with c.unlocked():
        c.budget, c.methods, c.pretrain.seed = 7, study.METHODS, 3
    configs = study.encoder_configs(c)
    assert set(configs) == {*study.METHODS, study.SUPERVISED, study.UNTRAINED, study.UNTRAINED_CONFORMER}
    assert {cfg.total_steps for cfg, untrained in configs.values() if not untrained} == {7}
    assert {cfg.seed for cfg, _ in configs.values()} == {3}  # the untrained references' draw too
    assert {cfg.data.name for cfg, _ in configs.values()} == {"synthetic_audio/tiny"}
    assert configs[study.SUPERVISED][0].task.num_classes == 12  # the pool's label column, from the dataset


def test_smoke_study_rows_targets_resume_and_budget(tmp_path):
    """One smoke study (one test, so one xdist worker pays for it): its table and targets,
    a resumed second call that keeps the first call's rows, and a changed budget refused."""
    workdir = tmp_path / "study"
    config = smoke_config()
    study.run(config, workdir, max_runs=3)
    first = (workdir / report.CSV_FILE).read_text().splitlines()
    study.run(config, workdir)

    table = (workdir / report.TABLE_FILE).read_text()
    for row in (study.BASELINE, study.SUPERVISED, study.UNTRAINED, "temporal_gap"):
        assert f"| {row} |" in table
    assert "incomplete" not in table
    targets = (workdir / study.TARGETS_FILE).read_text()
    assert "- temporal_gap - untrained (normalised):" in targets and "1. every pre-trained encoder" in targets
    assert "2. the best pre-trained encoder above logmel_stats" in targets and "3. the conformer" in targets
    compute = json.loads((workdir / study.COMPUTE_FILE).read_text())
    assert compute["temporal_gap"]["steps"] == 2 and len(compute["temporal_gap"]["calls"]) == 2

    # probes along the way: temporal_gap's checkpoint of step 1 is a row of its own, embedded from step 1
    assert "| temporal_gap@1 |" in table
    assert (workdir / "embeddings" / "temporal_gap@1" / "step1").is_dir()
    assert (workdir / "embeddings" / "temporal_gap" / "step2").is_dir()
    curve = (workdir / study.CURVE_TABLE).read_text()
    assert "| method | step 0 | step 1 | step 2 |" in curve and "| temporal_gap |" in curve
    assert (workdir / study.CURVE_FIGURE).is_file()

    lines = (workdir / report.CSV_FILE).read_text().splitlines()
    assert len(first) == 1 + 3 and lines[:4] == first
    rows = report.read_results(workdir / report.CSV_FILE)
    keys = [(r["encoder"], r["task"], r["arm"], r["train_set"], r["replica"]) for r in rows]
    assert len(set(keys)) == len(keys)
    baseline = {(r["arm"], r["train_set"], r["replica"]): r["score"] for r in rows if r["encoder"] == study.BASELINE}
    assert set(baseline) == {("frozen", s, r) for s in config.train_sets for r in range(config.replicas)}

    with config.unlocked():
        config.budget = 3
    with pytest.raises(ValueError, match="holds a study of budget 2"):
        study.run(config, workdir)
    with config.unlocked():
        config.budget, config.pretrain.seed = 2, 1
    with pytest.raises(ValueError, match="config.pretrain.seed=1, but .* holds a study of pretrain.seed 0"):
        study.run(config, workdir)
    with config.unlocked():
        config.pretrain.seed, config.pretrain.log_every_steps = 0, 5  # logging alone is not the study's scale
    study.check_workdir(config, workdir)


def test_baseline_spec_is_checked():
    c = config_lib.load_config_file(f"{ROOT / 'configs' / 'eval_protocol.py'}:smoke")
    with c.unlocked():
        c.encoders.logmel_stats = "baseline:logmel_mfcc"
    with pytest.raises(ValueError, match="unknown baseline 'logmel_mfcc'"):
        protocol.validate(c)
    c.encoders.logmel_stats, c.recipe = "baseline:logmel_stats", "slices"
    with pytest.raises(ValueError, match="recipe='clips'"):
        protocol.validate(c)


def test_label_fraction_grid_compares_the_study_conformer_with_itself_from_scratch(tmp_path):
    """Target 3: the study's conformer fine-tuned on each percent of a task's labels, pre-trained and
    from random weights, one point per replica seed; the summary and the target line against
    scores worked by hand (a fake runner: the fine-tunings themselves are tested elsewhere)."""
    config = smoke_config()
    with config.unlocked():
        config.methods, config.replicas = (study.CONFORMER,), 2
    conformer, _ = study.encoder_configs(config)[study.CONFORMER]
    enc = tmp_path / "encoders" / study.CONFORMER
    protocol.prepare_encoder(study.CONFORMER, conformer, enc, untrained=True)  # its weights are not under test
    protocol_cfg = study.protocol_config(config, {study.CONFORMER: enc})
    seen = {}

    def runner(c, directory, splits):
        seen[directory.name] = c
        pretrained = c.task.pretrained_workdir is not None
        score = 0.5 + 0.4 * c.data.train_fraction + (0.1 if pretrained else 0.0) + 0.01 * (c.seed - config.seed)
        return {f"{splits[0]}/accuracy": score, "num_train": 100.0 * c.data.train_fraction}

    summary = study.label_fractions(config, protocol_cfg, tmp_path, runner)
    assert sorted(seen) == sorted(
        f"{a}_{p}pct_r{r}" for a in ("pretrained", "scratch") for p in (50, 100) for r in (0, 1)
    )
    pre, scratch = seen["pretrained_50pct_r1"], seen["scratch_50pct_r1"]
    assert pre.task.pretrained_workdir == str(enc) and scratch.task.pretrained_workdir is None
    assert pre.data.train_fraction == 0.5 and pre.seed == scratch.seed == config.seed + 1
    assert pre.model.to_dict() == scratch.model.to_dict()  # the same conformer, its name aside:
    assert {k: v for k, v in pre.model.items() if k != "name"} == {
        k: v for k, v in conformer.model.items() if k != "name"
    }
    assert pre.total_steps == config.finetune.total_steps and pre.data.label_key == "label"
    rows = {r["percent"]: r for r in summary["rows"]}
    assert rows[50]["pretrained"] == pytest.approx(0.805) and rows[100]["scratch"] == pytest.approx(0.905)
    assert rows[50]["pretrained_std"] == pytest.approx(0.005)
    line = study.claim_line(config, summary)
    assert "NOT reached" in line and "difference -0.100" in line and "0.800 vs 0.900, 0.810 vs 0.910" in line
    assert (tmp_path / study.LABEL_FRACTIONS_DIR / "figure.png").is_file()
    rows[50]["pretrained"] = 0.95
    assert "REACHED" in study.claim_line(config, summary)
    with config.unlocked():
        config.label_fractions.percents = (50,)
    with pytest.raises(ValueError, match=r"label_fractions.percents=\(50,\): must hold 100"):
        study.label_fractions(config, protocol_cfg, tmp_path, runner)


def test_probe_curve_reads_each_step_from_its_row():
    """Hand-made protocol sections: step 0 is the method's own untrained reference, the middle
    steps its '@step' rows, the last step its final row; logmel_stats is the baseline."""
    c = smoke_config()
    with c.unlocked():
        c.methods, c.probe_steps, c.budget = ("temporal_gap", study.CONFORMER), (10, 20), 40
    enc = [
        study.UNTRAINED,
        study.UNTRAINED_CONFORMER,
        "temporal_gap@10",
        "temporal_gap@20",
        "temporal_gap",
        "wav2vec2@10",
        "wav2vec2@20",
        "wav2vec2",
        study.BASELINE,
    ]
    mean = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    section = dict(arm="frozen", label="full training set", scale="raw", encoders=enc, tasks=["a", "b"], mean=mean)
    curve = study.probe_curve(c, [section])
    assert curve["steps"] == [0, 10, 20, 40]
    a, b = curve["panels"]
    assert a["curves"] == {"temporal_gap": [0.1, 0.3, 0.4, 0.5], study.CONFORMER: [0.2, 0.6, 0.7, 0.8]}
    assert b["curves"]["temporal_gap"] == [0.9, 0.7, 0.6, 0.5] and b["baseline"] == 0.1
    text = study.curve_markdown(curve)
    assert "| wav2vec2 | 0.200 | 0.600 | 0.700 | 0.800 |" in text and "logmel_stats 0.900" in text


def test_probe_steps_configure_checkpoints_and_protocol_rows(tmp_path):
    c = smoke_config()
    with c.unlocked():
        c.methods, c.probe_steps, c.budget = ("temporal_gap", study.CONFORMER), (100, 300), 600
    configs = study.encoder_configs(c)
    tg = configs["temporal_gap"][0]
    assert tg.checkpoint.every_steps == 100 and tg.checkpoint.max_to_keep == 7  # steps 0..600 by 100 all kept
    dirs = {name: tmp_path / name for name in configs}
    pc = study.protocol_config(c, dirs)
    assert pc.encoders["temporal_gap@300"] == f"{tmp_path / 'temporal_gap'}@300"
    assert pc.untrained_for.to_dict() == {
        n: study.UNTRAINED_CONFORMER for n in ("wav2vec2", "wav2vec2@100", "wav2vec2@300")
    }
    assert protocol.run_and_step("x", f"{tmp_path}/run@300") == (f"{tmp_path}/run", 300)
    assert protocol.run_and_step("x", "runs/a@b/run") == ("runs/a@b/run", None)
    with pytest.raises(ValueError, match="encoders.x.*give a checkpoint step"):
        protocol.run_and_step("x", "runs/run@last")
    with c.unlocked():
        c.probe_steps = (100, 600)
    with pytest.raises(ValueError, match="probe_steps"):
        study.check_probe_steps(c)


def test_a_step_the_run_does_not_hold_is_named(tmp_path):
    c = smoke_config()
    untrained, _ = study.encoder_configs(c)[study.UNTRAINED]
    enc = tmp_path / "enc"
    protocol.prepare_encoder("u", untrained, enc, untrained=True)
    pc = study.protocol_config(c, {study.UNTRAINED: enc})
    with pc.unlocked():
        pc.encoders["u@5"] = f"{enc}@5"
    with pytest.raises(ValueError, match=r"holds checkpoints of steps \[0\], not 5"):
        protocol.Evaluator(pc, tmp_path).step("u@5")

"""Does pre-training help? The small-scale study of issue 15 (docs/results.md), one command.

    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --workdir=runs/study_small
    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --config.budget=20000 --workdir=runs/study_gpu

Pre-trains every method of both papers on the unlabeled pool (``--config.pool``, built by
../shared/tools/make_unlabeled_pool.py when missing) for ``--config.budget`` steps each,
then runs the protocol (FSDD digits, FSDD speakers, donate-a-cry) with the untrained,
supervised and log-mel mean+std baseline rows, and the conformer's label-fraction grid
(pre-trained vs. from scratch on 10%, 33% and 100% of FSDD digits' labels). Variants: '' (CPU-sized), 'smoke'
(seconds, synthetic data; for tests). See audiossl_jax/evaluation/study.py.
"""

import ml_collections

from audiossl_jax import config_lib
from audiossl_jax.evaluation import study


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    if variant not in ("", "smoke"):
        raise ValueError(f"unknown variant {variant!r}: use '' or 'smoke'.")
    # The protocol's keys (tasks, replicas, arms, ...): its 'demo' variant (configs/eval_protocol.py).
    c = config_lib.load_config_file(f"eval_protocol.py:{variant or 'demo'}")
    c.pool = config_lib.repo_path("../pool")
    c.pool_tool = config_lib.repo_path("../shared/tools/make_unlabeled_pool.py")
    c.pool_dataset = "audio_folder"
    c.budget = 1000  # pre-training steps of every encoder
    c.methods = study.METHODS
    c.supervised_label = "source_package"
    c.preset = "demo"  # the variant of configs/pretrain_<method>.py the study's encoders start from
    # Our choice, from the measurements in docs/results.md; learning_rate 0: each method's own.
    # seed: every encoder's initialisation, data order and dropout (the untrained references' too);
    # one workdir per seed, so that studies at several seeds measure what pre-training's draw moves.
    c.pretrain = ml_collections.ConfigDict(
        dict(batch_size=32, crop_seconds=5.0, learning_rate=0.0, channels=(), embed_dim=0, log_every_steps=50, seed=0)
    )
    c.encoders = ml_collections.ConfigDict()  # filled by ``study.encoder_configs``
    c.replicas = 2
    # The conformer's label-fraction grid (study.py's docstring, 4.): "a third of the labels" is
    # ``claim_percent``, compared with the conformer from scratch on 100%; () runs no grid.
    c.label_fractions = ml_collections.ConfigDict(dict(task="fsdd_digits", percents=(10, 33, 100), claim_percent=33))
    # Probes along the way: checkpoints of these pre-training steps (< budget) probed as rows
    # '<method>@<step>', plotted in probe_curve.png; () probes the last checkpoint only.
    c.probe_steps = ()
    if variant == "smoke":
        c.pool, c.pool_dataset, c.preset, c.budget = "", "synthetic_audio/tiny", "smoke", 2
        c.methods, c.supervised_label = ("temporal_gap",), "label"
        c.replicas, c.train_sets = 1, ("subset",)
        c.pretrain.update(dict(batch_size=8, crop_seconds=2.0, log_every_steps=1))
        c.label_fractions.update(dict(task="synthetic_tiny", percents=(50, 100), claim_percent=50))
        c.probe_steps = (1,)
    else:
        del c.tasks["synthetic"]
    return c

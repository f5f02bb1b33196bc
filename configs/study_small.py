"""Does pre-training help? The small-scale study of issue 15 (docs/results.md), one command.

    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --workdir=runs/study_small
    python -m audiossl_jax.evaluation.study --config=configs/study_small.py --config.budget=20000 --workdir=runs/study_gpu

Pre-trains every method of both papers on the unlabeled pool (``--config.pool``, built by
../shared/tools/make_unlabeled_pool.py when missing) for ``--config.budget`` steps each,
then runs the protocol (FSDD digits, FSDD speakers, donate-a-cry) with the untrained,
supervised and log-mel mean+std baseline rows. Variants: '' (CPU-sized), 'smoke'
(seconds, synthetic data; for tests). See audiossl_jax/evaluation/study.py.
"""

from audiossl_jax.evaluation import study


def get_config(variant: str = ""):
    return study.study_config(variant)

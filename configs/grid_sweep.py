"""Fine-tuning hyper-parameter sweep with validation selection (Srivastava et al., 2022, Sec. 4.3).

    python -m audiossl_jax.main --config=configs/grid_sweep.py:magnatagatune --workdir=runs/sweep_mtat \
        --config.base.task.pretrained_workdir=runs/cfS

Variant ``<task>[:S|L]``: a paper task of audiossl_jax/config_finetune.py (AudioSet runs
cf_L, the rest cf_S unless ':S'/':L' is given) or 'smoke'. Every combination of
``sweep.peak_learning_rates`` x ``total_steps`` x ``batch_sizes`` x ``output_dropouts``
fine-tunes in ``<workdir>/<point>``, scored on ``sweep.val_split`` (MagnaTagATune's
validation split; elsewhere a seeded 10% hold-out of the training split); only the point
selected on it is scored on the test split. Tables and defaults: audiossl_jax/config_grids.py.
"""

from audiossl_jax import config_grids


def get_config(variant: str = ""):
    return config_grids.sweep_config(variant)

"""Fine-tuning hyper-parameter sweep with validation selection (Srivastava et al., 2022, Sec. 4.3).

    python -m audiossl_jax.main --config=configs/grid_sweep.py:magnatagatune --workdir=runs/sweep_mtat \
        --config.base.task.pretrained_workdir=runs/cfS

Variant ``<task>[:S|L]``: a paper task of configs/eval_finetune_cfS.py (AudioSet runs
cf_L, the rest cf_S unless ':S'/':L' is given) or 'smoke'. Every combination of
``sweep.peak_learning_rates`` x ``total_steps`` x ``batch_sizes`` x ``output_dropouts``
fine-tunes in ``<workdir>/<point>``, scored on ``sweep.val_split`` (MagnaTagATune's
validation split; elsewhere a seeded 10% hold-out of the training split); only the point
selected on it is scored on the test split. Metrics and validation splits per task:
audiossl_jax/config_grids.py.
"""

import ml_collections

from audiossl_jax import config_grids, config_lib


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    size, task = config_grids.size_and_task(variant, "magnatagatune")
    if task not in config_grids.TASK_METRICS:
        raise ValueError(
            f"unknown sweep task {task!r}: use one of {sorted(config_grids.TASK_METRICS)}, optionally ':S' or ':L'"
        )
    c = config_grids.grid_config("sweep", config_grids.TASK_METRICS[task])
    c.base = config_lib.load_config_file(f"eval_finetune_cf{size}.py:{task}")
    if task in config_grids.VALIDATION_SPLITS:
        val_split = config_grids.VALIDATION_SPLITS[task]
    else:
        val_split, c.base.data.train_split = config_grids.holdout_splits(c.base.data.train_split)
    steps, batch = int(c.base.total_steps), int(c.base.batch_size)
    # "carefully tuning the learning rate, the learning rate schedule, and the batch size ... adding
    # dropout to the output layer": the values are our choice (the paper gives none).
    c.sweep = ml_collections.ConfigDict(
        dict(
            peak_learning_rates=(5e-5, 1e-4, 2e-4),
            total_steps=(steps // 2, steps),
            batch_sizes=(batch,) if task in config_grids.FIXED_BATCH else (batch // 2, batch),
            output_dropouts=(0.0, 0.1, 0.2),
            val_split=val_split,
        )
    )
    if task == "smoke":
        c.sweep.update(
            dict(peak_learning_rates=(1e-3, 3e-3), total_steps=(steps,), batch_sizes=(batch,), output_dropouts=(0.1,))
        )
    return c

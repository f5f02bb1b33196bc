"""Fine-tuning the cf_S conformer (18.4M parameters; Srivastava et al., 2022) on a downstream task.

    python -m audiossl_jax.main --config=configs/eval_finetune_cfS.py:audioset_f33 \
        --workdir=runs/ft_as33 --config.task.pretrained_workdir=runs/cfS

The model keys are those of configs/pretrain_cfS.py, so its checkpoints load; omit
``task.pretrained_workdir`` to train the same model from scratch. Recipe (Sec. 3.2): the
whole encoder updated, the tri-stage learning rate, the paper's augmentations and
consistency loss on every task, the paper's head.

Variants:

* the paper's tasks (``config_finetune.PAPER_TASKS``: ``audioset``, ``audioset_balanced``,
  ``fsdkaggle2019_curated``, ``fsdkaggle2019_noisy``, ``esc50``, ``dcase2019_1a``,
  ``magnatagatune``, ``kinetics700_audio``). Their raw files must be prepared first
  (docs/datasets.md); a missing one stops the run naming the dataset and where its files
  go. Each has its head (linear softmax pooling for AudioSet, average pooling + linear for
  the rest), class balancing on Full AudioSet only, and the paper's batch sizes (640 Full
  AudioSet, 64 MagnaTagATune). Our choices, for what the paper leaves to its sweep: batch
  640 and no output dropout for the two high-resource sets (Full AudioSet, Kinetics-700:
  2M and 504k clips), batch 64 and output dropout 0.1 for the low-resource ones (at most
  22k clips, like MagnaTagATune's 15k); 20k steps at a peak rate of 1e-4.
* small ones that run here (the ``demo``-sized conformer, 300 steps): ``synthetic``
  (built-in data, 12 classes), ``fsdd_digits``, ``fsdd_speaker``, ``donateacry``
  (../shared/data), and ``smoke`` (the smoke model, 4 steps).
* label fractions: any variant with a ``_f<percent>`` suffix trains on that percent of
  its training split (``data.train_fraction``, drawn by ``data.subset_seed``, nested
  across fractions), e.g. ``audioset_f3``. ``config_finetune.LABEL_FRACTIONS`` are the
  columns of the paper's Table 1 (run by configs/grid_label_fractions.py).

configs/eval_finetune_cfL.py is this recipe on cf_L's model.
"""

import ml_collections

from audiossl_jax import config_lib
from audiossl_jax.config_finetune import PAPER_TASKS, SHARED_DATA, SHARED_TASKS


def get_config(variant: str = "", pretrain: str = "pretrain_cfS.py") -> ml_collections.ConfigDict:
    """``variant`` (see above) on the model of the ``pretrain`` config file: its paper model for
    the paper's tasks, its 'demo' model for the small tasks, its 'smoke' model for 'smoke'."""
    base, _, percent = variant.rpartition("_f")
    if base and percent.isdigit():
        c = get_config(base, pretrain)
        c.data.train_fraction = int(percent) / 100
        return c
    if variant in PAPER_TASKS:
        preset = ""
    elif variant in SHARED_TASKS or variant in ("synthetic", "smoke"):
        preset = "smoke" if variant == "smoke" else "demo"
    else:
        raise ValueError(
            f"unknown variant {variant!r}: use one of {sorted(PAPER_TASKS) + sorted(SHARED_TASKS)} "
            "or 'synthetic', 'smoke', each optionally with a label-fraction suffix '_f<percent>' "
            "(e.g. 'audioset_f33')."
        )

    # The pre-training config's frontend, data crops, optimizer and model keys (so its checkpoint loads).
    c = config_lib.load_config_file(f"{pretrain}:{preset}")
    c.mode = "finetune"
    c.model.name = c.model.name.replace("wav2vec2", "finetune")
    # "warmup, hold, and exponential decay ... 30%, 30%, and 40% of all the updates" (from 1% of
    # the peak, down to 5%).
    c.schedule = config_lib.tri_stage_schedule(1e-3 if preset else 1e-4)
    config_lib.add_best_checkpoint_keys(c)

    if not preset:
        p = PAPER_TASKS[variant]
        c.total_steps = 20_000
        c.data.name, c.data.train_split, c.data.crop_seconds = p.dataset, p.train_split, p.crop_seconds
        c.data.multi_label, c.data.class_balanced = p.multi_label, p.class_balanced
        c.batch_size = p.batch_size
        # The paper's augmentations "to all downstream tasks" (jitter of up to 200 samples, one time
        # mask of up to 2 s per 10 s, mixup Beta(0.5, 0.5)) and its consistency loss (symmetric KL x 2).
        c.task = config_lib.classification_task(p.classes, p.multi_label, p.pooling)
        c.task.output_dropout = p.output_dropout
        return c

    folder, column, classes, crop = SHARED_TASKS.get(variant, (None, "label", 12, 4.0))
    c.task = config_lib.classification_task(classes, multi_label=False)
    c.task.output_dropout = 0.1
    if variant != "smoke":  # the smoke model keeps its 4 steps and 1 s crops
        c.total_steps, c.checkpoint.every_steps, c.log_every_steps = 300, 100, 25
        c.data.crop_seconds = crop
    if folder is not None:
        c.data.name, c.data.path, c.data.label_key = "audio_folder", f"{SHARED_DATA}/{folder}", column
    return c

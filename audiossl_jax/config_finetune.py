"""Fine-tuning configs of the conformer paper's downstream tasks (Srivastava et al., 2022).

``variant_config(size, variant)`` is what ``configs/eval_finetune_cf{S,L}.py:<variant>``
return: cf_S or cf_L (the model keys of ``config_lib.wav2vec2_pretrain_config``, so
that size's pre-training checkpoints load) fine-tuned with the recipe of
``evaluation.finetune.finetune_config``.

Variants:

* the paper's tasks (``PAPER_TASKS``): AudioSet balanced and full, FSDKaggle2019 curated
  and noisy, ESC-50, DCASE 2019 task 1a, MagnaTagATune, Kinetics-700 audio. Their raw
  files must be prepared first (docs/datasets.md); a missing one stops the run naming
  the dataset and where its files go. 20k steps at a peak rate of 1e-4 are our choice
  (DESIGN.md gives none).
* small ones that run here (the ``demo``-sized conformer, 300 steps): ``synthetic``
  (built-in data, 12 classes), ``fsdd_digits``, ``fsdd_speaker``, ``donateacry``
  (../shared/data), and ``smoke`` (the smoke model, 4 steps).
* label fractions: any variant with a ``_f<percent>`` suffix trains on that percent of
  its training split (``data.train_fraction``, drawn by ``data.subset_seed``, nested
  across fractions), e.g. ``audioset_f3``. ``LABEL_FRACTIONS`` are the columns of the
  paper's Table 1 (run by ``configs/grid_label_fractions.py``).
"""

from __future__ import annotations

import ml_collections

from audiossl_jax.evaluation.finetune import finetune_config

SHARED_DATA = "../shared/data"

# name -> (registry dataset, train split, classes, multi-label, crop seconds, consistency loss,
# output dropout, class-balanced sampling). AudioSet and FSDKaggle2019 are multi-label
# (linear softmax pooling); the rest single-label. Class-balanced sampling is on for
# AudioSet's skewed label set (DESIGN.md); any variant turns it on with
# --config.data.class_balanced=True.
PAPER_TASKS = {
    "audioset_balanced": ("audioset_balanced", "train", 527, True, 10.0, True, 0.0, True),
    "audioset": ("audioset", "train", 527, True, 10.0, True, 0.0, True),
    "fsdkaggle2019_curated": ("fsdkaggle2019", "curated", 80, True, 10.0, True, 0.1, False),
    "fsdkaggle2019_noisy": ("fsdkaggle2019", "noisy", 80, True, 10.0, True, 0.1, False),
    "esc50": ("esc50", "train", 50, False, 5.0, False, 0.1, False),
    "dcase2019_1a": ("dcase2019_task1a", "train", 10, False, 10.0, False, 0.1, False),
    "magnatagatune": ("magnatagatune", "train", 50, True, 10.0, False, 0.0, False),
    "kinetics700_audio": ("kinetics700_audio", "train", 700, False, 10.0, False, 0.0, False),
}

# Table 1 of Srivastava et al. (2022): column -> percent of Full AudioSet's ~2M labelled
# clips ("Balanced (20k) 60k 200k 600k Full (~2M)" over "1% 3% 10% 30% 100%"). The 1%
# column is the Balanced set itself, the others ``audioset_f<percent>``.
LABEL_FRACTIONS = {"Balanced (20k)": 1, "60k": 3, "200k": 10, "600k": 30, "Full (~2M)": 100}

# name -> (metadata.csv label column, classes, crop seconds) for ../shared/data folders.
SHARED_TASKS = {
    "fsdd_digits": ("fsdd", "label", 10, 2.5),
    "fsdd_speaker": ("fsdd", "speaker", 6, 2.5),
    "donateacry": ("donateacry", "label", 5, 7.0),
}


def variant_config(size: str, variant: str) -> ml_collections.ConfigDict:
    """``configs/eval_finetune_cf<size>.py:<variant>``: see the module docstring's "Variants"."""
    base, _, percent = variant.rpartition("_f")
    if base and percent.isdigit():
        c = variant_config(size, base)
        c.data.train_fraction = int(percent) / 100
        return c
    if variant in PAPER_TASKS:
        name, train_split, classes, multi, crop, consistency, dropout, balanced = PAPER_TASKS[variant]
        c = finetune_config(size, None, num_classes=classes, multi_label=multi)
        c.data.name, c.data.train_split, c.data.crop_seconds = name, train_split, crop
        c.data.multi_label, c.data.class_balanced = multi, balanced
        c.task.consistency, c.task.output_dropout = consistency, dropout
        return c
    if variant in SHARED_TASKS or variant in ("synthetic", "smoke"):
        folder, column, classes, crop = SHARED_TASKS.get(variant, (None, "label", 12, 4.0))
        smoke = variant == "smoke"  # keeps the smoke model's steps and crop
        c = finetune_config(size, "smoke" if smoke else "demo", num_classes=classes, multi_label=False)
        if not smoke:
            c.total_steps, c.checkpoint.every_steps, c.log_every_steps = 300, 100, 25
            c.data.crop_seconds = crop
        c.task.output_dropout = 0.1
        if folder is not None:
            c.data.name, c.data.path, c.data.label_key = "audio_folder", f"{SHARED_DATA}/{folder}", column
        return c
    raise ValueError(f"unknown variant {variant!r}: use one of {sorted(PAPER_TASKS) + sorted(SHARED_TASKS)} "
                     "or 'synthetic', 'smoke', each optionally with a label-fraction suffix '_f<percent>' "
                     "(e.g. 'audioset_f33').")

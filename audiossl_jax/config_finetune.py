"""Fine-tuning configs of the conformer paper's downstream tasks (Srivastava et al., 2022).

``variant_config(size, variant)`` is what ``configs/eval_finetune_cf{S,L}.py:<variant>``
return: cf_S or cf_L (the model keys of ``config_lib.wav2vec2_pretrain_config``, so
that size's pre-training checkpoints load) fine-tuned with the recipe of
``config_lib.finetune_config``.

Variants:

* the paper's tasks (``PAPER_TASKS``): AudioSet balanced and full, FSDKaggle2019 curated
  and noisy, ESC-50, DCASE 2019 task 1a, MagnaTagATune, Kinetics-700 audio. Their raw
  files must be prepared first (docs/datasets.md); a missing one stops the run naming
  the dataset and where its files go. Every one has the paper's head (linear softmax
  pooling for AudioSet, average pooling + linear for the rest), its augmentations and
  consistency loss ("to all downstream tasks"), class balancing on Full AudioSet only,
  and the paper's batch sizes (640 Full AudioSet, 64 MagnaTagATune). Our choices, for
  what the paper leaves to its sweep: batch 640 and no output dropout for the two
  high-resource sets (Full AudioSet, Kinetics-700: 2M and 504k clips), batch 64 and
  output dropout 0.1 for the low-resource ones (at most 22k clips, like MagnaTagATune's
  15k); 20k steps at a peak rate of 1e-4.
* small ones that run here (the ``demo``-sized conformer, 300 steps): ``synthetic``
  (built-in data, 12 classes), ``fsdd_digits``, ``fsdd_speaker``, ``donateacry``
  (../shared/data), and ``smoke`` (the smoke model, 4 steps).
* label fractions: any variant with a ``_f<percent>`` suffix trains on that percent of
  its training split (``data.train_fraction``, drawn by ``data.subset_seed``, nested
  across fractions), e.g. ``audioset_f3``. ``LABEL_FRACTIONS`` are the columns of the
  paper's Table 1 (run by ``configs/grid_label_fractions.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import ml_collections

from audiossl_jax.config_lib import finetune_config, repo_path

SHARED_DATA = repo_path("../shared/data")  # ../shared/data next to the checkout, whatever the working directory


class PaperTask(NamedTuple):
    """One downstream task of the paper: its data and the recipe parts that differ per task."""

    dataset: str  # registry name
    train_split: str
    classes: int
    multi_label: bool
    crop_seconds: float
    pooling: str  # models.classifier.POOLINGS: 'linear_softmax' for AudioSet, 'mean' elsewhere
    batch_size: int
    output_dropout: float
    class_balanced: bool  # "the highly skewed label distribution in Full AudioSet"


# Batch size and output dropout of the high- and low-resource tasks (module docstring).
HIGH_RESOURCE = dict(batch_size=640, output_dropout=0.0)
LOW_RESOURCE = dict(batch_size=64, output_dropout=0.1)

PAPER_TASKS = {
    "audioset_balanced": PaperTask(
        "audioset_balanced", "train", 527, True, 10.0, "linear_softmax", **LOW_RESOURCE, class_balanced=False
    ),
    "audioset": PaperTask("audioset", "train", 527, True, 10.0, "linear_softmax", **HIGH_RESOURCE, class_balanced=True),
    "fsdkaggle2019_curated": PaperTask(
        "fsdkaggle2019", "curated", 80, True, 10.0, "mean", **LOW_RESOURCE, class_balanced=False
    ),
    "fsdkaggle2019_noisy": PaperTask(
        "fsdkaggle2019", "noisy", 80, True, 10.0, "mean", **LOW_RESOURCE, class_balanced=False
    ),
    "esc50": PaperTask("esc50", "train", 50, False, 5.0, "mean", **LOW_RESOURCE, class_balanced=False),
    "dcase2019_1a": PaperTask(
        "dcase2019_task1a", "train", 10, False, 10.0, "mean", **LOW_RESOURCE, class_balanced=False
    ),
    "magnatagatune": PaperTask("magnatagatune", "train", 50, True, 10.0, "mean", **LOW_RESOURCE, class_balanced=False),
    "kinetics700_audio": PaperTask(
        "kinetics700_audio", "train", 700, False, 10.0, "mean", **HIGH_RESOURCE, class_balanced=False
    ),
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
        p = PAPER_TASKS[variant]
        c = finetune_config(size, None, num_classes=p.classes, multi_label=p.multi_label, pooling=p.pooling)
        c.data.name, c.data.train_split, c.data.crop_seconds = p.dataset, p.train_split, p.crop_seconds
        c.data.multi_label, c.data.class_balanced = p.multi_label, p.class_balanced
        c.batch_size, c.task.output_dropout = p.batch_size, p.output_dropout
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
    raise ValueError(
        f"unknown variant {variant!r}: use one of {sorted(PAPER_TASKS) + sorted(SHARED_TASKS)} "
        "or 'synthetic', 'smoke', each optionally with a label-fraction suffix '_f<percent>' "
        "(e.g. 'audioset_f33')."
    )

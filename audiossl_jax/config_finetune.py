"""The downstream tasks of the conformer paper (Srivastava et al., 2022) as data, shared by the
fine-tuning configs (``configs/eval_finetune_cfS.py``), the grid configs and the protocol's.

``PAPER_TASKS``: per task, its dataset and the recipe parts that differ per task (head,
batch size, output dropout, class balancing; the choices are said in
``configs/eval_finetune_cfS.py``). ``LABEL_FRACTIONS``: the columns of Table 1.
``SHARED_TASKS``: the small labelled folders of ../shared/data that run here.
"""

from __future__ import annotations

from typing import NamedTuple

from audiossl_jax.config_lib import repo_path

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


# Batch size and output dropout of the high- and low-resource tasks (configs/eval_finetune_cfS.py).
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

"""Downstream metrics of both papers, in pure NumPy.

Shapes: ``labels`` [N, C] binary (multi-label) or ``label`` [N] int (single-label);
``scores`` [N, C] real (higher = more likely; logits or probabilities alike).

Tie conventions (each matches scikit-learn, which the tests use as the reference):

* average precision: tied scores form one threshold (``average_precision_score``);
* ROC-AUC: tied scores count 1/2 (Mann-Whitney with mid-ranks, ``roc_auc_score``);
* lwlrap: a label's rank counts every label scoring >= it
  (``label_ranking_average_precision_score``);
* top-k: a clip is correct when fewer than k classes score strictly higher than its
  true class (ties resolve in the clip's favour); accuracy takes ``argmax`` (the first
  class among ties).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MacroScore:
    """A class-averaged metric and the classes left out of the average."""

    value: float
    num_classes: int
    skipped: tuple[int, ...]


def _check_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must both be [N, C]")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or Inf")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be binary (0/1) multi-hot [N, C]")
    return labels.astype(bool), scores


def average_precision(label: np.ndarray, score: np.ndarray) -> float:
    """AP of one class: sum over distinct thresholds of (R_n - R_{n-1}) P_n.

    label [N] bool with at least one positive, score [N].
    """
    order = np.argsort(-score, kind="mergesort")
    score, label = score[order], label[order]
    tp = np.cumsum(label)
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # last index of each tie group
    tp, seen = tp[last], last + 1
    precision = tp / seen
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> MacroScore:
    """mAP: AP averaged over classes with at least one positive (the others are skipped)."""
    labels, scores = _check_scores(labels, scores)
    skipped = tuple(int(c) for c in np.flatnonzero(~labels.any(axis=0)))
    used = [c for c in range(labels.shape[1]) if c not in skipped]
    if not used:
        raise ValueError("mAP is undefined: no class has a positive example")
    aps = [average_precision(labels[:, c], scores[:, c]) for c in used]
    return MacroScore(float(np.mean(aps)), len(used), skipped)


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x [N], tied values sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.r_[True, np.diff(sorted_x) != 0]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of one class (Mann-Whitney U / (P * N)); label [N] bool with both kinds."""
    pos = int(label.sum())
    neg = len(label) - pos
    ranks = _midranks(score)
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def macro_roc_auc(labels: np.ndarray, scores: np.ndarray) -> MacroScore:
    """MAUC: ROC-AUC averaged over classes with both positives and negatives."""
    labels, scores = _check_scores(labels, scores)
    counts = labels.sum(axis=0)
    skipped = tuple(int(c) for c in np.flatnonzero((counts == 0) | (counts == len(labels))))
    used = [c for c in range(labels.shape[1]) if c not in skipped]
    if not used:
        raise ValueError("ROC-AUC is undefined: no class has both positive and negative examples")
    return MacroScore(float(np.mean([roc_auc(labels[:, c], scores[:, c]) for c in used])), len(used), skipped)


def lwlrap(labels: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (DCASE 2019 task 2).

    For every (clip, positive label) pair: the fraction of positive labels among the
    labels of that clip scoring >= it. lwlrap is the mean over all such pairs, so each
    clip weighs as many times as it has labels.
    """
    labels, scores = _check_scores(labels, scores)
    if not labels.any():
        raise ValueError("lwlrap is undefined: no clip has a label")
    at_least = scores[:, None, :] >= scores[:, :, None]  # [N, C(label), C(other)]
    hits = (at_least & labels[:, None, :]).sum(axis=-1)
    ranks = at_least.sum(axis=-1)
    return float((hits / ranks)[labels].mean())


def accuracy(label: np.ndarray, scores: np.ndarray) -> float:
    """Top-1 accuracy: label [N] int, scores [N, C]."""
    return float(np.mean(np.argmax(scores, axis=-1) == _check_label(label, scores)))


def top_k_accuracy(label: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of clips whose true class is among the k best (fewer than k score higher)."""
    label = _check_label(label, scores)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must lie in [1, {scores.shape[1]}] (the number of classes)")
    true = np.take_along_axis(scores, label[:, None], axis=1)
    return float(np.mean((scores > true).sum(axis=1) < k))


def _check_label(label: np.ndarray, scores: np.ndarray) -> np.ndarray:
    label = np.asarray(label)
    if scores.ndim != 2 or label.shape != scores.shape[:1]:
        raise ValueError(f"label {label.shape} must be [N] for scores {scores.shape} [N, C]")
    if label.size and (label.min() < 0 or label.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}); got [{label.min()}, {label.max()}]")
    return label.astype(np.int64)


def one_hot(label: np.ndarray, num_classes: int) -> np.ndarray:
    """[N] int -> [N, C] multi-hot float32."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(label)]


def targets(label: np.ndarray, num_classes: int) -> np.ndarray:
    """[N] int -> one-hot [N, C]; [N, C] multi-hot passes through (float32)."""
    label = np.asarray(label)
    return one_hot(label, num_classes) if label.ndim == 1 else label.astype(np.float32)


def classification_metrics(label: np.ndarray, scores: np.ndarray, *, multi_label: bool) -> dict[str, float]:
    """Every metric that applies: single-label -> accuracy, top-5; multi-label -> mAP, lwlrap, MAUC.

    ``label`` is [N] int (single-label) or [N, C] multi-hot (multi-label).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not multi_label:
        out = {"accuracy": accuracy(label, scores)}
        if scores.shape[1] >= 5:
            out["top5_accuracy"] = top_k_accuracy(label, scores, 5)
        return out
    m, auc = mean_average_precision(label, scores), macro_roc_auc(label, scores)
    return {
        "mAP": m.value,
        "mAP_skipped_classes": float(len(m.skipped)),
        "lwlrap": lwlrap(label, scores),
        "mauc": auc.value,
        "mauc_skipped_classes": float(len(auc.skipped)),
    }

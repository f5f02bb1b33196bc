"""Every metric against scikit-learn, with ties and classes without positives."""

import numpy as np
import pytest
from sklearn import metrics as skm

from audiossl_jax.evaluation import metrics


def multilabel_data(seed, n=60, c=7, ties=False):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(np.int32)
    scores = rng.normal(size=(n, c)) + 1.5 * labels
    if ties:
        scores = np.round(scores * 2) / 2  # many exact ties
    return labels, scores


@pytest.mark.parametrize("ties", [False, True])
def test_map_matches_sklearn(ties):
    labels, scores = multilabel_data(0, ties=ties)
    got = metrics.mean_average_precision(labels, scores)
    want = skm.average_precision_score(labels, scores, average="macro")
    assert got.value == pytest.approx(want, abs=1e-12)
    assert got.skipped == ()


def test_map_skips_classes_without_positives_and_counts_them():
    labels, scores = multilabel_data(1)
    labels[:, [2, 5]] = 0
    got = metrics.mean_average_precision(labels, scores)
    keep = [0, 1, 3, 4, 6]
    want = skm.average_precision_score(labels[:, keep], scores[:, keep], average="macro")
    assert got.value == pytest.approx(want, abs=1e-12)
    assert got.skipped == (2, 5) and got.num_classes == 5


@pytest.mark.parametrize("ties", [False, True])
def test_lwlrap_matches_weighted_lrap(ties):
    labels, scores = multilabel_data(2, ties=ties)
    labels[3] = 0  # a clip without labels weighs nothing
    labels[4] = 1  # a clip with every label
    want = skm.label_ranking_average_precision_score(labels, scores, sample_weight=labels.sum(axis=1))
    assert metrics.lwlrap(labels, scores) == pytest.approx(want, abs=1e-12)


def test_lwlrap_hand_example():
    # Clip 0: labels {0, 2}; ranking 2 > 1 > 0 -> precisions 1/1 (label 2) and 2/3 (label 0).
    # Clip 1: label {1}; ranking 1 first -> 1.  lwlrap = (1 + 2/3 + 1) / 3.
    labels = np.array([[1, 0, 1], [0, 1, 0]])
    scores = np.array([[0.1, 0.5, 0.9], [0.2, 0.7, 0.1]])
    assert metrics.lwlrap(labels, scores) == pytest.approx((1 + 2 / 3 + 1) / 3)


@pytest.mark.parametrize("ties", [False, True])
def test_macro_roc_auc_matches_sklearn(ties):
    labels, scores = multilabel_data(3, ties=ties)
    got = metrics.macro_roc_auc(labels, scores)
    assert got.value == pytest.approx(skm.roc_auc_score(labels, scores, average="macro"), abs=1e-12)


def test_macro_roc_auc_skips_constant_classes():
    labels, scores = multilabel_data(4)
    labels[:, 1] = 0
    labels[:, 4] = 1
    got = metrics.macro_roc_auc(labels, scores)
    keep = [0, 2, 3, 5, 6]
    assert got.value == pytest.approx(skm.roc_auc_score(labels[:, keep], scores[:, keep]), abs=1e-12)
    assert got.skipped == (1, 4)


def test_accuracy_and_top_k_match_sklearn():
    rng = np.random.default_rng(5)
    label = rng.integers(0, 10, size=200)
    scores = rng.normal(size=(200, 10)) + 1.0 * np.eye(10)[label]
    assert metrics.accuracy(label, scores) == pytest.approx(skm.accuracy_score(label, scores.argmax(1)))
    for k in (1, 5):
        want = skm.top_k_accuracy_score(label, scores, k=k, labels=np.arange(10))
        assert metrics.top_k_accuracy(label, scores, k) == pytest.approx(want)
    assert metrics.top_k_accuracy(label, scores, 1) == pytest.approx(metrics.accuracy(label, scores))


def test_top_k_ties_favour_the_clip():
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.5, 0.5]])
    assert metrics.top_k_accuracy(np.array([1, 2]), scores, 1) == 0.5
    assert metrics.top_k_accuracy(np.array([1, 2]), scores, 2) == 1.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="binary"):
        metrics.mean_average_precision(np.full((3, 2), 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no class has a positive"):
        metrics.mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        metrics.accuracy(np.array([0, 3]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="k=4"):
        metrics.top_k_accuracy(np.array([0, 1]), np.zeros((2, 3)), 4)

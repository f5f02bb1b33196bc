"""The linear probe against scikit-learn's LogisticRegression, and its l2 choice."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from audiossl_jax.evaluation import linear, metrics


def blobs(seed, n=240, d=16, c=4, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * 1.2
    label = rng.integers(0, c, size=n)
    x = centres[label] + spread * rng.normal(size=(n, d))
    return (x * rng.uniform(0.1, 10, size=d) + 3.0).astype(np.float32), label  # unequal scales


@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_softmax_probe_matches_sklearn(l2):
    x, y = blobs(0)
    probe = linear.fit(x, y, num_classes=4, l2=l2, multi_label=False)
    xs = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=1.0 / (l2 * len(x)), tol=1e-8, max_iter=5000).fit(xs, y)
    p = np.exp(probe.scores(x))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, ref.predict_proba(xs), atol=2e-3)
    ours = metrics.accuracy(y, probe.scores(x))
    assert abs(ours - ref.score(xs, y)) <= 1.0 / len(y)


def test_sigmoid_probe_matches_one_vs_rest_sklearn():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    w = rng.normal(size=(8, 3))
    labels = (x @ w + 0.5 * rng.normal(size=(200, 3)) > 0).astype(np.int32)
    l2 = 1e-2
    probe = linear.fit(x, labels, num_classes=3, l2=l2, multi_label=True)
    xs = (x - x.mean(0)) / x.std(0)
    ref = OneVsRestClassifier(LogisticRegression(C=1.0 / (l2 * len(x)), tol=1e-8, max_iter=5000)).fit(xs, labels)
    p = 1 / (1 + np.exp(-probe.scores(x)))
    np.testing.assert_allclose(p, ref.predict_proba(xs), atol=2e-3)


def test_linear_eval_chooses_l2_on_validation_and_scores_test():
    x, y = blobs(3, n=400, spread=2.5)
    train, test = (x[:300], y[:300]), (x[300:], y[300:])
    result = linear.linear_eval(train, test, num_classes=4, seed=0)
    assert set(result["val_scores"]) == set(linear.DEFAULT_L2_GRID)
    assert result["val_scores"][result["l2"]] == max(result["val_scores"].values())
    # The reference: the same l2 in scikit-learn on all 300 training examples.
    mean, std = x[:300].mean(0), x[:300].std(0)
    ref = LogisticRegression(C=1.0 / (result["l2"] * 300), tol=1e-8, max_iter=5000)
    ref.fit((x[:300] - mean) / std, y[:300])
    want = ref.score((x[300:] - mean) / std, y[300:])
    assert result["accuracy"] == pytest.approx(want, abs=0.02)
    assert result["accuracy"] > 0.6  # four separable-ish blobs: far above chance (0.25)


def test_holdout_is_stratified_and_disjoint():
    y = np.repeat(np.arange(5), 20)
    tr, va = linear.holdout_split(y, 0.2, seed=1)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    np.testing.assert_array_equal(np.bincount(y[va]), [4] * 5)


def test_bad_embeddings_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        linear.fit(np.full((4, 2), np.nan), np.zeros(4, int), num_classes=2, l2=1e-3, multi_label=False)

"""Linear evaluation on frozen embeddings: only a linear layer is trained.

Solver: full-batch L-BFGS (``optax.lbfgs`` with its zoom line search) on embeddings
standardised with the training set's mean and standard deviation, minimising

    mean_i loss(W x_i + b, y_i) + l2 / 2 * ||W||^2          (the bias is not penalised)

with softmax cross-entropy (single-label) or the sum over classes of sigmoid binary
cross-entropy (multi-label). It stops when the gradient norm falls below ``tol`` or
after ``max_iter`` iterations. This is scikit-learn's ``LogisticRegression`` with
``C = 1 / (l2 * N)``, which the tests check.

Regularisation: every ``l2`` of the grid is fitted on the training split and scored on
the validation split (accuracy, or mAP for multi-label); the best (the larger ``l2``
on a tie) is refitted on training + validation and scored on the test split. Without
a validation split, a seeded ``val_fraction`` of the training split (stratified by
class for single-label) is held out for the choice.

    python -m audiossl_jax.evaluation.linear --train=emb/train.npz --test=emb/test.npz
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from audiossl_jax import cli  # first: quiets TensorFlow before it loads  # isort: skip

import jax
import jax.numpy as jnp
import numpy as np
import optax

from audiossl_jax.evaluation import metrics

DEFAULT_L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclasses.dataclass
class LinearProbe:
    """A fitted probe: standardisation (mean, std [D]) and the layer (kernel [D, C], bias [C])."""

    mean: np.ndarray
    std: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray
    multi_label: bool

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Embeddings [N, D] -> logits [N, C]."""
        return ((np.asarray(x, np.float32) - self.mean) / self.std) @ self.kernel + self.bias


def _loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array, l2: jax.Array, multi_label: bool) -> jax.Array:
    logits = x @ params["kernel"] + params["bias"]
    if multi_label:
        data = optax.sigmoid_binary_cross_entropy(logits, y).sum(axis=-1).mean()
    else:
        data = optax.softmax_cross_entropy(logits, y).mean()
    return data + 0.5 * l2 * jnp.sum(params["kernel"] ** 2)


@functools.partial(jax.jit, static_argnames=("multi_label", "max_iter"))
def _lbfgs(
    x: jax.Array, y: jax.Array, l2: jax.Array, multi_label: bool, max_iter: int, tol: float
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Full-batch L-BFGS from zero: x [N, D], targets y [N, C] -> (params, iterations)."""
    fn = functools.partial(_loss, x=x, y=y, l2=l2, multi_label=multi_label)
    params = {"kernel": jnp.zeros((x.shape[1], y.shape[1])), "bias": jnp.zeros((y.shape[1],))}
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fn)

    def step(carry: tuple[Any, Any]) -> tuple[Any, Any]:
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fn)
        return optax.apply_updates(params, updates), state

    def keep_going(carry: tuple[Any, Any]) -> jax.Array:
        count = optax.tree_utils.tree_get(carry[1], "count")
        grad = optax.tree_utils.tree_get(carry[1], "grad")
        return (count == 0) | ((count < max_iter) & (optax.tree_utils.tree_norm(grad) >= tol))

    params, state = jax.lax.while_loop(keep_going, step, (params, opt.init(params)))
    return params, optax.tree_utils.tree_get(state, "count")


def fit(
    x: np.ndarray,
    label: np.ndarray,
    *,
    num_classes: int,
    l2: float,
    multi_label: bool,
    max_iter: int = 1000,
    tol: float = 1e-5,
) -> LinearProbe:
    """Fits one probe on embeddings x [N, D] and labels [N] (or multi-hot [N, C])."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"embeddings must be a finite [N, D] array; got shape {x.shape}")
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    y = metrics.targets(label, num_classes)
    params, _ = _lbfgs(jnp.asarray((x - mean) / std), jnp.asarray(y), jnp.float32(l2), multi_label, max_iter, tol)
    params = jax.device_get(params)
    return LinearProbe(mean, std, np.asarray(params["kernel"]), np.asarray(params["bias"]), multi_label)


def _score(probe: LinearProbe, x: np.ndarray, label: np.ndarray, num_classes: int) -> float:
    s = probe.scores(x)
    if probe.multi_label:
        return metrics.mean_average_precision(metrics.targets(label, num_classes), s).value
    return metrics.accuracy(label, s)


def holdout_split(label: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index arrays; single-label [N] is stratified by class."""
    label = np.asarray(label)
    rng = np.random.default_rng(seed)
    if label.ndim == 1:
        val = []
        for c in np.unique(label):
            idx = rng.permutation(np.flatnonzero(label == c))
            val.extend(idx[: int(round(fraction * len(idx)))])
        val = np.sort(np.asarray(val, np.int64))
    else:
        val = np.sort(rng.permutation(len(label))[: int(round(fraction * len(label)))])
    if len(val) == 0 or len(val) == len(label):
        raise ValueError(f"val_fraction={fraction} of {len(label)} examples leaves an empty split")
    return np.setdiff1d(np.arange(len(label)), val), val


def linear_eval(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    multi_label: bool = False,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    l2_grid: tuple[float, ...] = DEFAULT_L2_GRID,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Chooses l2 on validation, refits on train + validation, scores the test split.

    Each of train/val/test is (embeddings [N, D], labels [N] or multi-hot [N, C]).
    Returns the test metrics (``metrics.classification_metrics``), ``l2`` and the
    validation score of every grid value (``val_scores``).
    """
    x, y = (np.asarray(a) for a in train)
    if val is None:
        tr, va = holdout_split(y, val_fraction, seed)
        (xt, yt), (xv, yv) = (x[tr], y[tr]), (x[va], y[va])
    else:
        (xt, yt), (xv, yv) = (x, y), (np.asarray(val[0]), np.asarray(val[1]))
    val_scores = {}
    for l2 in l2_grid:
        probe = fit(xt, yt, num_classes=num_classes, l2=l2, multi_label=multi_label)
        val_scores[l2] = _score(probe, xv, yv, num_classes)
    best = max(sorted(l2_grid, reverse=True), key=lambda l2: val_scores[l2])
    probe = fit(
        np.concatenate([xt, xv]), np.concatenate([yt, yv]), num_classes=num_classes, l2=best, multi_label=multi_label
    )
    result = metrics.classification_metrics(test[1], probe.scores(test[0]), multi_label=multi_label)
    return {**result, "l2": best, "val_scores": val_scores}


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        if "scene" not in f or "label" not in f:
            raise ValueError(f"{path} holds no 'scene'/'label' arrays: write it with audiossl_jax.evaluation.embed")
        return f["scene"], f["label"]


def class_count(path: str, labels: list[np.ndarray]) -> int:
    """The classes of the embeddings in ``path``: its ``class_names`` (written by
    ``evaluation.embed``), else the largest label in ``labels`` + 1."""
    with np.load(path) as f:
        if "class_names" in f and len(f["class_names"]):
            return len(f["class_names"])
    return int(max(int(lab.max()) for lab in labels)) + 1


def main(argv: list[str]) -> None:
    from absl import flags

    cli.start(argv)
    f = flags.FLAGS
    with cli.user_errors(OSError, ValueError):
        train, test = _load(f.train), _load(f.test)
        val = _load(f.val) if f.val else None
        labels = [train[1], test[1]] + ([val[1]] if val else [])
        num_classes = f.num_classes or class_count(f.train, labels)
        if min(int(lab.min()) for lab in labels) < 0:
            raise ValueError("some examples are unlabelled (label -1): embed a labelled split")
        result = linear_eval(train, test, num_classes=num_classes, val=val, seed=f.seed)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "val_scores"}
            | {"val_scores": {str(k): v for k, v in result["val_scores"].items()}},
            indent=2,
        )
    )


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("train", None, "npz of the training split (scene, label).")
    flags.DEFINE_string("test", None, "npz of the test split.")
    flags.DEFINE_string("val", None, "npz of a validation split; default: hold out 20% of train.")
    flags.DEFINE_integer(
        "num_classes", None, "Number of classes; default: the train file's class_names, else max label + 1."
    )
    flags.DEFINE_integer("seed", 0, "Seed of the validation hold-out.")
    flags.mark_flags_as_required(["train", "test"])
    app.run(main)

"""Seeded training subsets: the protocol's "1000 random examples" and ``data.train_fraction``.

Both are pure functions of (split size, size or fraction, seed), so every host, every
encoder of one protocol replica and every resumed run reads the same examples;
``pipeline.make_train_iterator(..., examples=...)`` trains on them.
"""

from __future__ import annotations

import numpy as np


def subset_indices(num_examples: int, size: int, seed: int) -> np.ndarray:
    """``min(size, num_examples)`` distinct example indices int64 [k], sorted; a pure function of the seed.

    The first ``size`` entries of one seeded permutation, so subsets of one seed are
    nested: the 10% subset lies inside the 50% one.
    """
    if size < 1:
        raise ValueError(f"a training subset needs at least 1 example; got {size}")
    rng = np.random.default_rng(seed % 2**63)
    return np.sort(rng.permutation(num_examples)[: min(size, num_examples)]).astype(np.int64)


def check_fraction(fraction: float) -> float:
    """``data.train_fraction`` itself, after checking it lies in (0, 1]; the error names the key."""
    if not 0 < fraction <= 1:
        raise ValueError(f"config.data.train_fraction={fraction!r}: must lie in (0, 1] "
                         "(1 trains on the whole split).")
    return fraction


def fraction_size(num_examples: int, fraction: float) -> int:
    """Examples kept by ``data.train_fraction``: round(fraction * n), at least 1."""
    return max(1, int(round(check_fraction(fraction) * num_examples)))

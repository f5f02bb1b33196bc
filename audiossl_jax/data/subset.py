"""Seeded training subsets: ``data.train_fraction`` and ``data.train_size`` (the protocol's
"1000 random examples").

Both are pure functions of (split size, size or fraction, seed), so every host, every
encoder of one protocol replica and every resumed run reads the same examples;
``pipeline.make_train_iterator`` trains on them (``pipeline.train_examples``).
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


def check(fraction: float, size: int) -> None:
    """Checks ``data.train_fraction`` in (0, 1] and ``data.train_size`` >= 0, not both set;
    the error names the key."""
    if not 0 < fraction <= 1:
        raise ValueError(f"config.data.train_fraction={fraction!r}: must lie in (0, 1] "
                         "(1 trains on the whole split).")
    if size < 0:
        raise ValueError(f"config.data.train_size={size!r}: must be >= 0 (0 trains on the whole split).")
    if size and fraction != 1:
        raise ValueError(f"config.data.train_fraction={fraction!r} and config.data.train_size={size!r} both "
                         "restrict the training split; set one of them.")


def subset_size(num_examples: int, fraction: float, size: int) -> int | None:
    """Examples kept of a split of ``num_examples``: ``min(size, n)`` when ``data.train_size``
    is set, else round(fraction * n) (at least 1) when ``data.train_fraction`` < 1, else None."""
    check(fraction, size)
    if size:
        return min(size, num_examples)
    return None if fraction == 1 else max(1, int(round(fraction * num_examples)))

"""Which examples the protocol's "1000 random examples" arm trains on.

``subset_indices`` of the training split are the same for every encoder of one replica;
``pipeline.make_train_iterator(..., examples=...)`` reads them.
"""

from __future__ import annotations

import numpy as np


def subset_indices(num_examples: int, size: int, seed: int) -> np.ndarray:
    """``min(size, num_examples)`` distinct example indices int64 [k], sorted; a pure function of the seed."""
    if size < 1:
        raise ValueError(f"a training subset needs at least 1 example; got n_train={size}")
    rng = np.random.default_rng([seed % 2**63, size])
    return np.sort(rng.permutation(num_examples)[: min(size, num_examples)]).astype(np.int64)

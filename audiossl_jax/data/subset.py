"""Seeded subsets: ``data.train_fraction`` / ``data.train_size`` (the protocol's "1000 random
examples") and the derived split names (hold-out and cross-validation folds).

All are pure functions of their inputs and a seed, so every host, every encoder of one
protocol replica and every resumed run reads the same examples;
``pipeline.make_train_iterator`` trains on them (``pipeline.train_examples``).

Derived splits (``parse_split``; ``registry.load_source`` resolves them for every dataset):

* ``<split>@holdout:P:SEED``: a seeded P% (integer, 1..99) of ``<split>``;
  ``<split>@rest:P:SEED``: the rest of it. The two are disjoint and together are
  ``<split>`` (``holdout_indices``).
* ``train@cv:K``: every fold but fold K; ``test@cv:K``: fold K (datasets whose rows carry
  a fold, e.g. ESC-50; ``manifest.select``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

import numpy as np

HOLDOUT, REST, CV = "holdout", "rest", "cv"
GRAMMAR = (
    "'<split>@holdout:P:SEED' (a seeded P% of <split>, P an integer in 1..99, SEED an integer >= 0), "
    "'<split>@rest:P:SEED' (the rest of <split>), 'train@cv:K' (every fold but fold K) and "
    "'test@cv:K' (fold K); <split> is a split of the dataset, or a 'train@cv:K'/'test@cv:K'"
)
_HOLDOUT = re.compile(r"(holdout|rest):([0-9]+):([0-9]+)")
_CV = re.compile(r"cv:([^@:,!\s]+)")


@dataclasses.dataclass(frozen=True)
class DerivedSplit:
    """A split drawn from another: ``base`` and the rule (kind, percent and seed, or fold)."""

    base: str
    kind: str
    percent: int = 0
    seed: int = 0
    fold: str = ""


def parse_split(split: str) -> DerivedSplit | None:
    """The rule of a derived split name, or None for a plain name (no '@').

    Raises ValueError naming ``split`` and the grammar when it is malformed.
    """
    if "@" not in split:
        return None
    base, _, rule = split.rpartition("@")

    def bad(what: str) -> ValueError:
        return ValueError(f"split {split!r} is malformed: {what}. Derived splits: {GRAMMAR}.")

    if not base:
        raise bad("nothing before '@'")
    if rule.startswith("cv:"):
        match = _CV.fullmatch(rule)
        if match is None:
            raise bad(f"{rule!r} names no fold K")
        if base not in ("train", "test"):
            raise bad(f"cross-validation applies to 'train' (every fold but K) or 'test' (fold K), not {base!r}")
        return DerivedSplit(base, CV, fold=match.group(1))
    match = _HOLDOUT.fullmatch(rule)
    if match is None:
        raise bad(f"{rule!r} is neither 'holdout:P:SEED', 'rest:P:SEED' nor 'cv:K'")
    percent, seed = int(match.group(2)), int(match.group(3))
    if not 1 <= percent <= 99:
        raise bad(f"P={percent} is not a whole percent in 1..99")
    try:
        parse_split(base)
    except ValueError as e:
        raise bad(f"its base {base!r} is malformed") from e
    return DerivedSplit(base, match.group(1), percent=percent, seed=seed)


def base_name(split: str) -> str | None:
    """The split-column value that ``split`` reads rows of (None for fold selections)."""
    derived = parse_split(split)
    if derived is None:
        return None if split.lstrip("!").startswith("fold:") else split
    return None if derived.kind == CV else base_name(derived.base)


def _unit_order(units: Sequence[str], seed: int) -> list[str]:
    """The distinct units, ordered by SHA-256 of (seed, unit), ties by the unit itself."""

    def rank(unit: str) -> tuple[bytes, str]:
        return hashlib.sha256(f"{seed}\0{unit}".encode()).digest(), unit

    return sorted(set(units), key=rank)


def holdout_indices(units: Sequence[str], percent: int, seed: int, *, rest: bool) -> np.ndarray:
    """Example indices int64 [k], sorted, of the ``percent``% hold-out (or, ``rest``, of the rest).

    ``units[i]`` is example i's hold-out unit (its group, or its own key): the examples of
    a unit fall on one side. Units are taken in the order of ``_unit_order`` until the
    hold-out holds at least ``target = round(percent * n / 100)`` examples (halves up,
    at least 1), but never all units. Without shared units the hold-out has exactly
    ``target`` examples (capped at n - 1). Which units are held out depends only on the
    set of units and the seed, never on the examples' order.
    """
    n = len(units)
    target = max(1, (percent * n + 50) // 100)
    order = _unit_order(units, seed)
    if len(order) < 2:
        raise ValueError(
            f"a hold-out needs at least 2 examples (2 groups when examples share one); the split "
            f"has {n} examples in {len(order)} group(s)"
        )
    sizes: dict[str, int] = {}
    for unit in units:
        sizes[unit] = sizes.get(unit, 0) + 1
    held, count = set(), 0
    for unit in order[:-1]:
        if count >= target:
            break
        held.add(unit)
        count += sizes[unit]
    return np.asarray([i for i, u in enumerate(units) if (u in held) != rest], np.int64)


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
        raise ValueError(f"config.data.train_fraction={fraction!r}: must lie in (0, 1] (1 trains on the whole split).")
    if size < 0:
        raise ValueError(f"config.data.train_size={size!r}: must be >= 0 (0 trains on the whole split).")
    if size and fraction != 1:
        raise ValueError(
            f"config.data.train_fraction={fraction!r} and config.data.train_size={size!r} both "
            "restrict the training split; set one of them."
        )


def subset_size(num_examples: int, fraction: float, size: int) -> int | None:
    """Examples kept of a split of ``num_examples``: ``min(size, n)`` when ``data.train_size``
    is set, else round(fraction * n) (at least 1) when ``data.train_fraction`` < 1, else None."""
    check(fraction, size)
    if size:
        return min(size, num_examples)
    return None if fraction == 1 else max(1, int(round(fraction * num_examples)))

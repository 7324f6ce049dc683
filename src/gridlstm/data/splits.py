"""Validation and test rows cut from a user's training rows by seeded fractions: the one rule
the own-data tasks (`gridlstm.data.sequences`, `gridlstm.data.image_folder`) share, so a
split is the same function of (rows, fractions, data_seed) in both."""

from __future__ import annotations

import numpy as np


def check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name}={value}: give a fraction between 0 and 1")


def cut(
    count: int, fractions: dict[str, float], seed: int, source: str
) -> tuple[dict[str, list[int]], list[int]]:
    """The row indices of each split in ``fractions`` (at least one row each, in the order
    given) from a seeded permutation of ``count`` rows, and the rows left for training (in
    their original order). ValueError naming ``source`` when none are left."""
    order = np.random.default_rng(seed).permutation(count).tolist()
    chosen, start = {}, 0
    for split, fraction in fractions.items():
        size = max(1, round(fraction * count))
        chosen[split] = order[start : start + size]
        start += size
    if start >= count:
        raise ValueError(
            f"{source}: {count} rows leave none for training after "
            f"{', '.join(fractions)} (val_fraction / test_fraction)"
        )
    return chosen, sorted(order[start:])

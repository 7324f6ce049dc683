"""Fair comparisons: the width at which a model has a given number of parameters.

Closed-form counts differ for every architecture (embeddings, attention, feed-forward
layers, tying modes), so instead of a formula per model name the model is built at
candidate widths and the closest count wins. Parameter counts grow monotonically with
the width, so a bisection needs about log2(max_width) builds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def width_for_budget(
    build: Callable[[int], nn.Module], budget: int, multiple: int = 1, max_width: int = 8192
) -> tuple[int, int]:
    """(width, parameters) of ``build(width)`` closest to ``budget``; widths are multiples of
    ``multiple`` (e.g. the attention heads)."""
    if budget < 1:
        raise ValueError(f"parameter budget must be >= 1, got {budget}")
    lo, hi = 1, max_width // multiple  # in units of ``multiple``
    counts: dict[int, int] = {}

    def count(units: int) -> int:
        if units not in counts:
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                counts[units] = count_parameters(build(units * multiple))
        return counts[units]

    while lo < hi:  # the smallest width whose count reaches the budget
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid + 1
        else:
            hi = mid
    best = min({max(1, lo - 1), lo}, key=lambda u: abs(count(u) - budget))
    return best * multiple, count(best)

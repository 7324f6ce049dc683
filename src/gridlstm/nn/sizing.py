"""Fair comparisons: the width at which a model has a given number of parameters.

Closed-form counts differ for every architecture (embeddings, attention, feed-forward
layers, tying modes), so instead of a formula per model name the model is built at
candidate widths and the closest count wins. Parameter counts grow monotonically with
the width, so a bisection needs about log2(max_width) builds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def forward_flops(module: nn.Module, *inputs: object) -> int:
    """FLOPs of ``module``'s matrix products on ``inputs`` (2 per multiply-add), counted by
    `torch.utils.flop_counter` with every `GridLSTM` inside on the naive backend's PyTorch
    steps, where each GEMM is an op it sees (the other backends compute the same products,
    some inside the LSTM kernel or the native steps, which it does not count). oneDNN and
    cuDNN are off while it counts: their fused `nn.LSTM` (the stacked LSTM baseline) is one op
    the counter gives 0 FLOPs, where PyTorch's own LSTM runs its GEMMs as ops it sees.
    Elementwise gate arithmetic is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from gridlstm.nn import dispatch
    from gridlstm.nn.grid import GridLSTM

    grids = [m for m in module.modules() if isinstance(m, GridLSTM)]
    backends = [grid.backend for grid in grids]
    for grid in grids:
        grid.backend = "naive"
    try:
        with warnings.catch_warnings():  # oneDNN's flags() warns, both ways, about Intel GPUs
            warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
            with (
                torch.backends.mkldnn.flags(enabled=False),
                torch.backends.cudnn.flags(enabled=False),
                torch.no_grad(),
                dispatch.reference(),
                FlopCounterMode(display=False) as counter,
            ):
                module(*inputs)
    finally:
        for grid, backend in zip(grids, backends, strict=True):
            grid.backend = backend
    return counter.get_total_flops()


def width_for_budget(
    build: Callable[[int], nn.Module], budget: int, multiple: int = 1, max_width: int = 1 << 20
) -> tuple[int, int]:
    """(width, parameters) of ``build(width)`` closest to ``budget``; widths are multiples of
    ``multiple`` (e.g. the attention heads). A budget that even ``max_width`` does not reach
    (a one-layer net of a few inputs) is a ValueError, not a smaller model."""
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
    if count(lo) < budget and abs(count(lo) - budget) > 0.02 * budget:
        raise ValueError(
            f"parameter budget {budget} needs a width above {max_width} (that width gives "
            f"{count(lo)} parameters); use more layers or a smaller budget"
        )
    best = min({max(1, lo - 1), lo}, key=lambda u: abs(count(u) - budget))
    return best * multiple, count(best)

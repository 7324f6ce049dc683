"""The one interface every backend implements: ``run(net, call) -> (output, final)``.

A backend reads what it needs of the network through `Network` (which `GridLSTM` satisfies)
and the forward's arguments through `Call`, so none of them imports the module that holds
the network, and the table in `gridlstm.nn.backends` can hand any call to any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn

Pair = tuple[Tensor, Tensor]


class Network(Protocol):
    """What a backend reads of a `gridlstm.nn.GridLSTM`."""

    grid_dims: int
    num_layers: int
    hidden_size: int
    depth: int
    blocks: nn.ModuleList
    dropout: nn.Dropout
    priority: list[int]
    input_dims: list[int]
    output_dims: list[int]
    memory_proj: nn.Module | None
    tied: bool
    compile_mode: str | None


@dataclass(frozen=True)
class Call:
    """One forward's arguments, the same for every backend.

    x: the input, batch first (B, *sizes, F); inputs: per dimension the projected (h, m or
    None) it receives at the grid's near edge or the bottom of depth; boundary: per grid
    dimension the incoming (h, m) each (L, B, *sizes without k, d); valid: (B, T) mask of
    real steps or None; lengths: (B,) or None (the fast backend packs by them)."""

    x: Tensor
    inputs: dict[int, tuple[Tensor, Tensor | None]]
    boundary: list[Pair]
    valid: Tensor | None
    lengths: Tensor | None


__all__ = ["Call", "Network", "Pair"]

"""cuDNN-backed baselines: `torch.nn.LSTM` and `torch.nn.GRU` with the suite's constructor."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_sizes
from gridlstm.nn.precision import run_rnn


class StackedLSTM(nn.LSTM):
    """`torch.nn.LSTM` (cuDNN on GPU) with a configurable forget-gate bias init.

    ``forget_bias``: the forget gate's bias at initialisation (input side; the hidden side's
    forget rows start at zero), 1.0 by default as the suite's blocks have it; ``None`` keeps
    `torch.nn.LSTM`'s own initialisation of every bias, uniform(+-1/sqrt(hidden_size)). Why a
    knob: how fast the stacked LSTM learns long tasks rests partly on it.

    Same interface as `Grid2dLSTM`: ``forward(input, state) -> (output, (h_n, c_n))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        forget_bias: float | None = 1.0,
        batch_first: bool = False,
    ) -> None:
        check_sizes(input_size, hidden_size, num_layers, dropout)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=batch_first,
        )
        if forget_bias is None:
            return
        with torch.no_grad():
            for layer in range(num_layers):
                getattr(self, f"bias_ih_l{layer}")[hidden_size : 2 * hidden_size].fill_(forget_bias)
                getattr(self, f"bias_hh_l{layer}")[hidden_size : 2 * hidden_size].zero_()

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> Any:
        """`torch.nn.LSTM`'s forward, its kernel in the dtype `gridlstm.nn.precision` decides
        under autocast (on CUDA, autocast alone would run it in float16 under bf16)."""
        return run_rnn(self, input, hx)


class StackedGRU(nn.GRU):
    """`torch.nn.GRU` (cuDNN on GPU) with the suite's constructor."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        batch_first: bool = False,
    ) -> None:
        check_sizes(input_size, hidden_size, num_layers, dropout)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=batch_first,
        )

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Any:
        """`torch.nn.GRU`'s forward, its kernel dtype decided as for `StackedLSTM`."""
        return run_rnn(self, input, hx)

"""Stacked LSTM baseline: `torch.nn.LSTM` with the suite's constructor and init conventions."""

from __future__ import annotations

import torch
from torch import nn

from gridlstm.nn.checks import check_positive, check_probability


class StackedLSTM(nn.LSTM):
    """`torch.nn.LSTM` (cuDNN on GPU) with a configurable forget-gate bias init.

    Same interface as `Grid2dLSTM`: ``forward(input, state) -> (output, (h_n, c_n))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
        batch_first: bool = True,
    ) -> None:
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        check_positive("input_size", input_size)
        check_probability("dropout", dropout)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=batch_first,
        )
        with torch.no_grad():
            for layer in range(num_layers):
                getattr(self, f"bias_ih_l{layer}")[hidden_size : 2 * hidden_size].fill_(forget_bias)
                getattr(self, f"bias_hh_l{layer}")[hidden_size : 2 * hidden_size].zero_()

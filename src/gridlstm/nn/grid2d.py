"""2-LSTM over time x depth: `GridLSTM` with one grid dimension (docs/model.md section 2).

Kept as its own name because it is the model of most of the paper's tables (addition,
memorization, enwik8) and of ``model=grid2d``. ``priority`` takes the names used in configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridlstm.nn.grid import GridLSTM


class Grid2dLSTM(GridLSTM):
    """A 2-LSTM with the `torch.nn.LSTM` interface: input (T, B, F) (or (B, T, F) with
    ``batch_first=True``), state (h, m) of the time dimension per layer, each
    (num_layers, B, hidden_size).

    ``priority``: ``"none"`` (default [ours, measured]: both LSTMs read the previous
    vectors), ``"depth"`` (the depth LSTM reads the new time hidden vector, as
    coreylynch/grid-lstm and TensorFlow's Grid2LSTMCell do; it broke tied grids at depth 8 in
    docs/claims/deep_tied), ``"time"`` (the reverse), or a list as `GridLSTM` takes it (0:
    time, ``"depth"``). The input is projected only where ``input_size`` differs from
    ``hidden_size``. These are the suite's ``model=grid2d`` defaults. Other options: see
    `GridLSTM`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        priority: str | int | Sequence[int | str] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, grid_dims=1, priority=priority, **kwargs
        )

"""Baselines with the Grid LSTM calling convention ``output, state = net(input, state)``.

* `StackedCellLSTM`: a stacked LSTM built from the grid's `LSTMTransform`, so it has the
  same variants (peepholes, coupled input-forget gate, paper output form). Without them it
  equals `torch.nn.LSTM` (use `StackedLSTM` there: it runs on cuDNN).
* `DeepFeedForward`: deep tanh or ReLU nets, the parity baselines (vector in, vector out).
* `MDLSTM2d`: Graves' 2D Multidimensional LSTM, for comparison with the 3-LSTM: one forget
  gate per dimension and the two incoming memories *summed*, which is exactly what Grid LSTM
  avoids. Layers are stacked on the previous layer's outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridlstm.nn.block import ACTIVATIONS, LSTMTransform
from gridlstm.nn.checks import check_choice, check_sizes

State = tuple[Tensor, Tensor]
INITS = ("standard", "pytorch", "xavier", "kaiming")  # DeepFeedForward(init=...)


class StackedCellLSTM(nn.Module):
    """Stacked LSTM with peephole / coupled-gate / output-form variants (a loop over time)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        peephole: bool = False,
        coupled: bool = False,
        output_form: str = "standard",
        forget_bias: float = 1.0,
        dropout: float = 0.0,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size, num_layers, dropout)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, batch_first
        # Layer l's transform reads H = [h_{t-1}; input], like nn.LSTM's [W_hh | W_ih].
        self.layers = nn.ModuleList(
            LSTMTransform(
                hidden_size + (input_size if layer == 0 else hidden_size),
                hidden_size,
                output_form=output_form,
                forget_bias=forget_bias,
                peephole=peephole,
                coupled=coupled,
            )
            for layer in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, input: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = input if self.batch_first else input.transpose(0, 1)
        batch = x.shape[0]
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        h_n, c_n = [], []
        for layer, transform in enumerate(self.layers):
            if layer > 0:
                x = self.dropout(x)
            h, m = state[0][layer], state[1][layer]
            outputs = []
            for t in range(x.shape[1]):
                h, m = transform(torch.cat([h, x[:, t]], dim=-1), m)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
            h_n.append(h)
            c_n.append(m)
        output = x if self.batch_first else x.transpose(0, 1)
        return output, (torch.stack(h_n), torch.stack(c_n))


class DeepFeedForward(nn.Module):
    """``num_layers`` fully connected layers with tanh or ReLU: (B, F) -> ((B, d), None).

    Args:
        activation: ``tanh`` or ``relu``.
        init: the weights' initialisation: ``standard`` (the activation's standard:
            ``xavier`` for tanh, ``kaiming`` for ReLU), ``pytorch`` (nn.Linear's default,
            uniform with bound 1/sqrt(fan_in); the suite's default before 0.3), ``xavier``
            (Glorot uniform with tanh's gain 5/3) or ``kaiming`` (He normal for ReLU,
            fan_in). Biases start at zero except under ``pytorch``. Deep nets started at
            ``pytorch``'s scale shrink their signal layer by layer, so a fair baseline uses
            its family's standard.
        residual: every layer after the first adds its input back (``x + f(W x + b)``), the
            residual net a reader expects as the strong deep feed-forward baseline.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        activation: str = "tanh",
        init: str = "standard",
        residual: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size, num_layers)
        check_choice("activation", activation, ("tanh", "relu"))
        check_choice("init", init, INITS)
        check_choice("residual", residual, (False, True))
        self.input_size, self.hidden_size, self.activation = input_size, hidden_size, activation
        self.init, self.residual = init, residual
        sizes = [input_size] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        if init == "standard":
            init = "xavier" if activation == "tanh" else "kaiming"
        if init != "pytorch":
            for layer in self.layers:
                if init == "xavier":
                    nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain("tanh"))
                else:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, input: Tensor, state: None = None) -> tuple[Tensor, None]:
        x = input
        for number, layer in enumerate(self.layers):
            y = ACTIVATIONS[self.activation](layer(x))
            x = x + y if self.residual and number > 0 else y
        return x, None


class MDLSTM2d(nn.Module):
    """Graves' 2D Multidimensional LSTM over (B, H, W, F) -> ((B, H, W, d), None).

    Cell (i, j) reads x_ij, h from (i-1, j) and from (i, j-1); gates i, o, g and one forget
    gate per dimension; m = f_1 * m_(i-1,j) + f_2 * m_(i,j-1) + i * g; h = o * tanh(m).
    Cells on one anti-diagonal are computed together.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, *, forget_bias: float = 1.0
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size, num_layers)
        self.input_size, self.hidden_size = input_size, hidden_size
        d = hidden_size
        self.gates = nn.ModuleList(
            nn.Linear((input_size if layer == 0 else d) + 2 * d, 5 * d)
            for layer in range(num_layers)
        )
        bound = d**-0.5
        for linear in self.gates:
            nn.init.uniform_(linear.weight, -bound, bound)
            with torch.no_grad():
                linear.bias.zero_()
                linear.bias[d : 3 * d] = forget_bias  # gate order: i, f_1, f_2, g, o

    def _layer(self, x: Tensor, gates: nn.Linear) -> Tensor:
        batch, height, width, _ = x.shape
        d = self.hidden_size
        zeros = x.new_zeros(batch, d)
        h: dict[tuple[int, int], Tensor] = {}
        m: dict[tuple[int, int], Tensor] = {}
        for diagonal in range(height + width - 1):
            cells = [(i, diagonal - i) for i in range(height) if 0 <= diagonal - i < width]
            h_up = torch.cat([h.get((i - 1, j), zeros) for i, j in cells])
            h_left = torch.cat([h.get((i, j - 1), zeros) for i, j in cells])
            m_up = torch.cat([m.get((i - 1, j), zeros) for i, j in cells])
            m_left = torch.cat([m.get((i, j - 1), zeros) for i, j in cells])
            inputs = torch.cat([x[:, i, j] for i, j in cells])
            z = gates(torch.cat([inputs, h_up, h_left], dim=-1))
            i_g, f_1, f_2, g, o = z.chunk(5, dim=-1)
            m_new = (
                torch.sigmoid(f_1) * m_up
                + torch.sigmoid(f_2) * m_left
                + torch.sigmoid(i_g) * torch.tanh(g)
            )
            h_new = torch.sigmoid(o) * torch.tanh(m_new)
            for cell, h_cell, m_cell in zip(
                cells, h_new.split(batch), m_new.split(batch), strict=True
            ):
                h[cell], m[cell] = h_cell, m_cell
        rows = [torch.stack([h[i, j] for j in range(width)], dim=1) for i in range(height)]
        return torch.stack(rows, dim=1)

    def forward(self, input: Tensor, state: None = None) -> tuple[Tensor, None]:
        x = input
        for gates in self.gates:
            x = self._layer(x, gates)
        return x, None

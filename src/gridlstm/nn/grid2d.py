"""2-LSTM over time x depth (Kalchbrenner et al. 2016, sections 3 and 4; spec section 2).

Each layer l and time step t is a 2D block. It receives (h_time, m_time) from (t-1, l) and
(h_depth, m_depth) from (t, l-1), forms H = [h_time; h_depth] and applies one LSTM transform
per dimension, each with its own weights. Memories are never mixed across dimensions.

With depth priority the time LSTM runs first and the depth LSTM sees the *new* time hidden
vector; with no priority both read the old H. In both cases the layer factorises exactly
(spec section 2, "Exact fast path"):

1. the time LSTM over the whole sequence is `torch.nn.LSTM` whose input is the depth hidden
   sequence from the layer below (W_ih multiplies h_depth, W_hh multiplies h_time), so it runs
   on cuDNN on a GPU;
2. the depth LSTM is then one (B*T, 2d) x (2d, 4d) GEMM and a pointwise step for all time
   steps at once, with no recurrence.

Gate order follows PyTorch: input, forget, cell (g), output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_choice, check_positive, check_probability

PRIORITIES = ("depth", "none")

State = tuple[Tensor, Tensor]


def _init_forget_bias(bias: Tensor, hidden_size: int, value: float) -> None:
    """Set the forget-gate slice (PyTorch order i, f, g, o) of a bias vector."""
    with torch.no_grad():
        bias[hidden_size : 2 * hidden_size].fill_(value)


class DepthLSTM(nn.Module):
    """The depth transform of a 2D block, applied to every time step at once.

    One Linear over [h_time; h_depth] gives the four gates; there is no recurrence along
    time, so the whole (batch, time) grid is a single GEMM.
    """

    def __init__(self, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(2 * hidden_size, 4 * hidden_size)
        bound = hidden_size**-0.5
        nn.init.uniform_(self.gates.weight, -bound, bound)
        nn.init.zeros_(self.gates.bias)
        _init_forget_bias(self.gates.bias, hidden_size, forget_bias)

    def forward(self, h_time: Tensor, h_depth: Tensor, m_depth: Tensor) -> State:
        i, f, g, o = self.gates(torch.cat([h_time, h_depth], dim=-1)).chunk(4, dim=-1)
        m = torch.sigmoid(f) * m_depth + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(m), m


class TimeLSTM(nn.LSTM):
    """The time transform of a 2D block: exactly a one-layer `nn.LSTM` over the sequence."""

    def __init__(self, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__(hidden_size, hidden_size, num_layers=1, batch_first=True)
        # nn.LSTM has two bias vectors; their sum is the block's bias.
        _init_forget_bias(self.bias_ih_l0, hidden_size, forget_bias)
        _init_forget_bias(self.bias_hh_l0, hidden_size, 0.0)


class Grid2dLSTM(nn.Module):
    """A 2-LSTM (time x depth) with an `nn.LSTM`-like interface.

    The input at each time step enters at the bottom of the depth dimension as the initial
    depth hidden vector (through one linear projection when ``input_size != hidden_size``;
    depth memory 0). The output is the top depth hidden vector at every step. The state is
    the time dimension's (h, m) of every layer, shaped like `nn.LSTM`'s ``(h_n, c_n)``:
    ``(num_layers, batch, hidden_size)``, so it can be carried across truncated-BPTT chunks.

    Args:
        input_size: features per time step.
        hidden_size: d, the size of every hidden and memory vector.
        num_layers: number of blocks along depth.
        tied: share one block (time and depth weights) across all layers
            ("tied along depth", spec 3.5 (a)).
        priority: ``"depth"`` (the depth LSTM reads the new time hidden vector) or
            ``"none"`` (both transforms read the same H).
        dropout: dropout on the depth hidden vector passed from one layer to the next.
        forget_bias: initial forget-gate bias of every LSTM transform.
        batch_first: input and output are (batch, time, features) when True.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        tied: bool = False,
        priority: str = "depth",
        dropout: float = 0.0,
        forget_bias: float = 1.0,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        check_positive("input_size", input_size)
        check_choice("priority", priority, PRIORITIES)
        check_probability("dropout", dropout)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.tied = tied
        self.priority = priority
        self.batch_first = batch_first
        self.input_proj: nn.Module = (
            nn.Identity() if input_size == hidden_size else nn.Linear(input_size, hidden_size)
        )
        blocks = 1 if tied else num_layers
        self.time = nn.ModuleList(TimeLSTM(hidden_size, forget_bias) for _ in range(blocks))
        self.depth = nn.ModuleList(DepthLSTM(hidden_size, forget_bias) for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)

    def _block(self, layer: int) -> tuple[TimeLSTM, DepthLSTM]:
        index = 0 if self.tied else layer
        return self.time[index], self.depth[index]

    def _check_state(self, state: State, batch: int, like: Tensor) -> State:
        expected = (self.num_layers, batch, self.hidden_size)
        for name, tensor in zip(("h_0", "c_0"), state, strict=True):
            if tuple(tensor.shape) != expected:
                raise ValueError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}")
        return state[0].to(like), state[1].to(like)

    def forward(self, input: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the grid over a whole sequence.

        Returns ``(output, (h_n, c_n))`` with output the top depth hidden vectors.
        """
        if input.dim() != 3 or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input must be 3-D with last dimension input_size={self.input_size}, "
                f"got shape {tuple(input.shape)}"
            )
        x = input if self.batch_first else input.transpose(0, 1)
        batch = x.shape[0]
        h_depth = self.input_proj(x)
        m_depth = torch.zeros_like(h_depth)
        if state is None:
            zeros = h_depth.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        else:
            state = self._check_state(state, batch, h_depth)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            time_lstm, depth_lstm = self._block(layer)
            if layer > 0:
                h_depth = self.dropout(h_depth)
            h0, c0 = state[0][layer : layer + 1], state[1][layer : layer + 1]
            h_time, (h_last, c_last) = time_lstm(h_depth, (h0.contiguous(), c0.contiguous()))
            if self.priority == "none":
                # The depth transform reads the time hidden vector the block received.
                h_time = torch.cat([h0.transpose(0, 1), h_time[:, :-1]], dim=1)
            h_depth, m_depth = depth_lstm(h_time, h_depth, m_depth)
            h_n.append(h_last)
            c_n.append(c_last)
        output = h_depth if self.batch_first else h_depth.transpose(0, 1)
        return output, (torch.cat(h_n), torch.cat(c_n))

"""Grid LSTM networks: K sequence/spatial dimensions plus depth (spec section 2).

``grid_dims = K``: 0 gives the 1-LSTM (a vector in, L blocks along depth), 1 the 2-LSTM
(time x depth), 2 the 3-LSTM (two spatial dimensions x depth), and so on. Dimension indices:
the grid dimensions are 0..K-1 in the order of the input's axes, depth is K.

The input at every grid position enters at the bottom of depth through one linear projection
into h (and, with ``input_to_memory``, a second one into m; otherwise the bottom m is 0).
The output is the top depth hidden vector at every position. Along each grid dimension the
(h, m) pairs flow in increasing index; the state is what enters at index 0 and leaves at the
far end, per layer, so chunks of a sequence can be chained (truncated BPTT).

Backends (``backend``; ``"auto"`` picks the first that applies, see `fast_path_blocker`):
* ``fast``: exact factorisation (spec section 2). K = 1: per layer one cuDNN-able LSTM over
  time (`torch.nn.LSTM`'s kernel on the time transform's weights) plus one batched depth step
  for all time steps. K = 0 with one block for all layers: one LSTM kernel over L steps of
  zero input with h0 = the projected input.
* ``hyperplane``: cells with equal coordinate sum are independent; sum(sizes) - K sequential
  steps, each one call per layer (one call in all when the layers share a block).
* ``naive``: one cell at a time (the reference order).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gridlstm.nn.block import GridBlock, LSTMTransform, NonLSTMTransform
from gridlstm.nn.checks import check_choice, check_positive, check_probability

log = logging.getLogger(__name__)
BACKENDS = ("auto", "fast", "hyperplane", "naive")
Pair = tuple[Tensor, Tensor]


def lstm_kernel(
    x: Tensor, h0: Tensor, c0: Tensor, weight: Tensor, bias: Tensor | None, split: int
) -> tuple[Tensor, Pair]:
    """Run `torch.nn.LSTM`'s kernel (cuDNN on GPU) on a block transform's weights.

    ``weight`` (4d, F): columns [0:split] multiply the recurrent h (nn.LSTM's W_hh), the rest
    multiply the input (W_ih). x: (B, T, F - split) batch-first; h0, c0: (1, B, d).
    """
    params = [weight[:, split:].contiguous(), weight[:, :split].contiguous()]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    output, h_n, c_n = torch._VF.lstm(  # the op behind nn.LSTM.forward
        x, (h0, c0), params, bias is not None, 1, 0.0, False, False, True
    )
    return output, (h_n, c_n)


class GridLSTM(nn.Module):
    """A Grid LSTM network with the `torch.nn.LSTM` calling convention.

    Args:
        input_size: features of the input at each grid position (of the vector for K = 0).
        hidden_size: d.
        num_layers: L, blocks along depth.
        grid_dims: K, sequence/spatial dimensions of the input (0, 1, 2, ...).
        kinds: per dimension (K grid dims then depth) ``"lstm"`` or ``"nonlstm"``.
        priority: ordered priority dimensions; ints or ``"depth"`` (default ``["depth"]``
            [ours, as coreylynch/grid-lstm]); ``[]`` for none.
        tied: one block for every layer ("tied along depth", spec 3.5 (a)).
        tie_depth_lstm: per-layer blocks whose depth transform is shared (spec 3.5 (b),
            coreylynch's ``tie_weights``).
        share_dims: one transform for all dimensions of a block (spec 3.5 (c), TF ``tied``).
        input_to_memory: also project the input into the bottom depth memory.
        dropout: on the depth hidden vector between layers.
        backend: ``auto``, ``fast``, ``hyperplane`` or ``naive``.
        output_form, bias, forget_bias, peephole, coupled, activation: see `GridBlock`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        grid_dims: int = 1,
        *,
        kinds: Sequence[str] | None = None,
        priority: Sequence[int | str] = ("depth",),
        tied: bool = False,
        tie_depth_lstm: bool = False,
        share_dims: bool = False,
        output_form: str = "standard",
        bias: bool = True,
        forget_bias: float = 1.0,
        peephole: bool = False,
        coupled: bool = False,
        activation: str = "tanh",
        input_to_memory: bool = False,
        dropout: float = 0.0,
        batch_first: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        check_positive("input_size", input_size)
        if isinstance(grid_dims, bool) or not isinstance(grid_dims, int) or grid_dims < 0:
            raise ValueError(f"grid_dims must be an integer >= 0, got {grid_dims!r}")
        check_probability("dropout", dropout)
        check_choice("backend", backend, BACKENDS)
        if tied and tie_depth_lstm:
            raise ValueError("tied=True already shares the whole block; drop tie_depth_lstm")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.grid_dims = num_layers, grid_dims
        self.depth = grid_dims  # index of the depth dimension
        self.batch_first, self.tied, self.tie_depth_lstm = batch_first, tied, tie_depth_lstm
        self.priority = [self.depth if p == "depth" else p for p in priority]
        for dim in self.priority:
            if isinstance(dim, bool) or not isinstance(dim, int):
                raise ValueError(
                    f"priority entries must be dimension indices or 'depth', got {dim!r}"
                )

        def make(shared: dict[int, nn.Module] | None = None) -> GridBlock:
            return GridBlock(
                grid_dims + 1,
                hidden_size,
                kinds=kinds,
                priority=self.priority,
                share_dims=share_dims,
                shared=shared,
                output_form=output_form,
                bias=bias,
                forget_bias=forget_bias,
                peephole=peephole,
                coupled=coupled,
                activation=activation,
            )

        first = make()
        if tied:
            blocks = [first] * num_layers
        elif tie_depth_lstm:
            blocks = [first] + [
                make({self.depth: first.transforms[self.depth]}) for _ in range(num_layers - 1)
            ]
        else:
            blocks = [first] + [make() for _ in range(num_layers - 1)]
        self.blocks = nn.ModuleList(blocks)
        self.input_proj = nn.Linear(input_size, hidden_size)
        self.memory_proj = nn.Linear(input_size, hidden_size) if input_to_memory else None
        self.dropout = nn.Dropout(dropout)

        blocker = self.fast_path_blocker()
        if backend == "fast" and blocker:
            raise ValueError(
                f"backend='fast' does not apply: {blocker}; use 'hyperplane' or 'naive'"
            )
        self.backend = backend if backend != "auto" else ("hyperplane" if blocker else "fast")
        log.info(
            "GridLSTM(grid_dims=%d, layers=%d): backend=%s", grid_dims, num_layers, self.backend
        )

    def fast_path_blocker(self) -> str | None:
        """Why the exact fast path does not apply to this configuration (None if it does)."""
        block = self.blocks[0]
        if self.grid_dims > 1:
            return "more than one grid dimension needs a wavefront over the grid"
        if self.grid_dims == 0 and len(set(map(id, self.blocks))) > 1:
            return "an untied 1-LSTM has a different block at every layer"
        if self.grid_dims == 0 and self.dropout.p > 0:
            return "dropout between the layers of a 1-LSTM"
        lead = block.transforms[0]
        if not isinstance(lead, LSTMTransform):
            return "the first dimension is non-LSTM" if self.grid_dims else "non-LSTM depth"
        if lead.output_form != "standard" or lead.peephole or lead.coupled:
            return "paper output form, peepholes or coupled gates are not in the LSTM kernel"
        if self.grid_dims == 1:
            if 0 in self.priority:
                return "time priority"
            depth = block.transforms[1]
            if isinstance(depth, LSTMTransform) and (
                depth.output_form != "standard" or depth.peephole or depth.coupled
            ):
                return "paper output form, peepholes or coupled gates in the depth transform"
        return None

    # ------------------------------------------------------------------ public API
    def forward(self, input: Tensor, state=None):  # noqa: ANN001, ANN201
        """``output, state = net(input, state)``.

        K = 0: input (B, F) -> output (B, d), state None.
        K = 1: input (B, T, F) (or (T, B, F)) -> output (B, T, d); state (h, m) each
        (L, B, d), the time dimension's vectors, like `nn.LSTM`'s (h_n, c_n).
        K >= 2: input (B, S_1..S_K, F) -> output (B, S_1..S_K, d); state a list with, per grid
        dimension k, (h, m) each (L, B, *sizes without S_k, d).
        """
        x = self._check_input(input)
        if self.grid_dims == 1 and not self.batch_first:
            x = x.transpose(0, 1)
        boundary = self._boundary(x, state)
        h_bottom = self.input_proj(x)
        m_bottom = (
            self.memory_proj(x) if self.memory_proj is not None else torch.zeros_like(h_bottom)
        )
        if self.backend == "fast":
            output, final = self._fast(h_bottom, m_bottom, boundary)
        else:
            output, final = self._scheduled(
                h_bottom, m_bottom, boundary, self.backend == "hyperplane"
            )
        if self.grid_dims == 1:
            final = final[0]
            if not self.batch_first:
                output = output.transpose(0, 1)
        elif self.grid_dims == 0:
            final = None
        return output, final

    # ------------------------------------------------------------------ checks
    def _check_input(self, input: Tensor) -> Tensor:
        expected = self.grid_dims + 2
        if input.dim() != expected or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input must be {expected}-D (batch, {self.grid_dims} grid dims, features) with "
                f"features = input_size = {self.input_size}; got shape {tuple(input.shape)}"
            )
        return input

    def _boundary(self, x: Tensor, state) -> list[Pair]:  # noqa: ANN001
        """Incoming (h, m) per grid dimension, each (L, B, *sizes without k, d)."""
        batch, sizes = x.shape[0], list(x.shape[1:-1])
        shapes = [
            (self.num_layers, batch, *sizes[:k], *sizes[k + 1 :], self.hidden_size)
            for k in range(self.grid_dims)
        ]
        if state is None:
            return [(x.new_zeros(s), x.new_zeros(s)) for s in shapes]
        pairs = [state] if self.grid_dims == 1 else list(state)
        if len(pairs) != self.grid_dims:
            raise ValueError(
                f"state must hold one (h, m) pair per grid dimension ({self.grid_dims})"
            )
        for k, (pair, shape) in enumerate(zip(pairs, shapes, strict=True)):
            for name, tensor in zip(("h", "m"), pair, strict=True):
                if tuple(tensor.shape) != shape:
                    raise ValueError(
                        f"state {name} of grid dimension {k} must have shape {shape}, "
                        f"got {tuple(tensor.shape)}"
                    )
        return [(h.to(x), m.to(x)) for h, m in pairs]

    # ------------------------------------------------------------------ fast path
    def _fast(
        self, h_depth: Tensor, m_depth: Tensor, boundary: list[Pair]
    ) -> tuple[Tensor, list[Pair]]:
        d = self.hidden_size
        if self.grid_dims == 0:
            # One block applied L times = an LSTM over L steps of zero input (one zero W_ih
            # column) starting from h0 = the projected input.
            lead = self.blocks[0].transforms[0]
            steps = h_depth.new_zeros(h_depth.shape[0], self.num_layers, 1)
            weight = torch.nn.functional.pad(lead.weight, (0, 1))
            out, _ = lstm_kernel(steps, h_depth[None], m_depth[None], weight, lead.bias, split=d)
            return out[:, -1], []
        h_n, c_n = [], []
        h0_all, c0_all = boundary[0]
        for layer, block in enumerate(self.blocks):
            if layer > 0:
                h_depth = self.dropout(h_depth)
            h0, c0 = h0_all[layer : layer + 1], c0_all[layer : layer + 1]
            time = block.transforms[0]
            h_time, (h_last, c_last) = lstm_kernel(h_depth, h0, c0, time.weight, time.bias, split=d)
            if 1 not in block.priority:
                # No depth priority: the depth transform reads the time vector the block got.
                h_time = torch.cat([h0.transpose(0, 1), h_time[:, :-1]], dim=1)
            h_depth, m_depth = block.transforms[1](torch.cat([h_time, h_depth], -1), m_depth)
            h_n.append(h_last)
            c_n.append(c_last)
        return h_depth, [(torch.cat(h_n), torch.cat(c_n))]

    # ------------------------------------------------------------------ schedulers
    def _scheduled(
        self, h_bottom: Tensor, m_bottom: Tensor, boundary: list[Pair], wavefront: bool
    ) -> tuple[Tensor, list[Pair]]:
        """Run every cell (position p, layer l) of the grid.

        ``wavefront``: batch the cells of one hyperplane sum(p) + l = s (grouped by block);
        otherwise one cell at a time in lexicographic order. Cell outputs are kept in a dict
        (no in-place writes into tensors autograd needs).
        """
        K, L, d = self.grid_dims, self.num_layers, self.hidden_size
        batch, sizes = h_bottom.shape[0], list(h_bottom.shape[1:-1])
        positions = list(itertools.product(*(range(s) for s in sizes)))
        cells = [(p, layer) for p in positions for layer in range(L)]
        if wavefront:
            steps: dict[tuple[int, int], list] = {}
            for p, layer in cells:
                group = 0 if self.tied else layer
                steps.setdefault((sum(p) + layer, group), []).append((p, layer))
            groups = [steps[key] for key in sorted(steps)]
        else:
            groups = [[cell] for cell in cells]

        out_h: dict[tuple, list[Tensor]] = {}
        out_m: dict[tuple, list[Tensor]] = {}

        def incoming(p: tuple[int, ...], layer: int) -> tuple[list[Tensor], list[Tensor]]:
            h_in, m_in = [], []
            for k in range(K):
                if p[k] > 0:
                    prev = (p[:k] + (p[k] - 1,) + p[k + 1 :], layer)
                    h_in.append(out_h[prev][k])
                    m_in.append(out_m[prev][k])
                else:
                    rest = p[:k] + p[k + 1 :]
                    h_in.append(boundary[k][0][(layer, slice(None), *rest)])
                    m_in.append(boundary[k][1][(layer, slice(None), *rest)])
            if layer > 0:
                h_in.append(self.dropout(out_h[(p, layer - 1)][K]))
                m_in.append(out_m[(p, layer - 1)][K])
            else:
                h_in.append(h_bottom[(slice(None), *p)])
                m_in.append(m_bottom[(slice(None), *p)])
            return h_in, m_in

        for group in groups:
            ins = [incoming(p, layer) for p, layer in group]
            h_in = [torch.cat([hs[i] for hs, _ in ins]) for i in range(K + 1)]
            m_in = [torch.cat([ms[i] for _, ms in ins]) for i in range(K + 1)]
            h_new, m_new = self.blocks[group[0][1]](h_in, m_in)
            h_parts = [t.split(batch) for t in h_new]
            m_parts = [t.split(batch) for t in m_new]
            for j, cell in enumerate(group):
                out_h[cell] = [parts[j] for parts in h_parts]
                out_m[cell] = [parts[j] for parts in m_parts]

        top = torch.stack([out_h[(p, L - 1)][K] for p in positions], dim=1)
        output = top.reshape(batch, *sizes, d)
        final = []
        for k in range(K):
            last = [p for p in positions if p[k] == sizes[k] - 1]
            rest_sizes = sizes[:k] + sizes[k + 1 :]
            pair = []
            for store in (out_h, out_m):
                layers = [
                    torch.stack([store[(p, layer)][k] for p in last], dim=1) for layer in range(L)
                ]
                pair.append(torch.stack(layers).reshape(L, batch, *rest_sizes, d))
            final.append((pair[0], pair[1]))
        return output, final


__all__ = ["GridLSTM", "NonLSTMTransform", "lstm_kernel"]

"""The N-dimensional Grid LSTM block (docs/model.md section 1) and its per-dimension transforms.

A block receives a hidden vector h_i and a memory vector m_i for every dimension i, forms
H = [h_1; ...; h_N] and applies one transform per dimension, each with its own weights
(unless shared). It emits N pairs (h'_i, m'_i); memories are never mixed across dimensions.

Transforms:
* `LSTMTransform`: gates from H, new memory from this dimension's own m. Options: output
  form ``standard`` (h' = o * tanh(m')) or ``paper`` (h' = tanh(o * m')), biases, forget-gate
  bias init, peepholes (Gers: i and f see m, o sees m'), coupled input-forget gate (i = 1 - f).
* `NonLSTMTransform` (paper 3.3): h' = act(V H + b) with no memory; m passes through.

Priority (paper 3.2): non-priority dimensions are computed first from H; then each priority
dimension, in the given order, from H with the hidden vectors of every dimension computed so
far replaced by their new values.

Weight layout: every transform holds one matrix over the whole H, gate rows in PyTorch order
(input, forget, cell, output; ``coupled`` drops the input rows). Column block j multiplies
h_j, so for time x depth the time transform's columns [0:d] are nn.LSTM's W_hh and [d:2d]
its W_ih.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_choice, check_positive
from gridlstm.nn.kernels import ops

KINDS = ("lstm", "nonlstm")
OUTPUT_FORMS = ("standard", "paper")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class LSTMTransform(nn.Module):
    """One LSTM transform of a block: (H, m) -> (h', m')."""

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        output_form: str = "standard",
        bias: bool = True,
        forget_bias: float = 1.0,
        peephole: bool = False,
        coupled: bool = False,
    ) -> None:
        super().__init__()
        check_choice("output_form", output_form, OUTPUT_FORMS)
        self.hidden_size, self.output_form = hidden_size, output_form
        self.peephole, self.coupled = peephole, coupled
        self.forget_bias = forget_bias
        gates = 3 if coupled else 4
        self.weight = nn.Parameter(torch.empty(gates * hidden_size, in_features))
        self.bias = nn.Parameter(torch.empty(gates * hidden_size)) if bias else None
        if peephole:
            self.peep = nn.Parameter(torch.empty(2 if coupled else 3, hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.LSTM's uniform(+-1/sqrt(d)) weights; zero biases except the forget gate's,
        which starts at ``forget_bias``."""
        bound = self.hidden_size**-0.5
        with torch.no_grad():
            nn.init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                forget = 0 if self.coupled else 1
                self.bias.zero_()
                self.bias[forget * self.hidden_size : (forget + 1) * self.hidden_size] = (
                    self.forget_bias
                )
            if self.peephole:
                nn.init.uniform_(self.peep, -bound, bound)

    def gates(self, H: Tensor) -> Tensor:
        return nn.functional.linear(H, self.weight, self.bias)

    def peepholes(self) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """(input, forget, output) peephole vectors; None where absent."""
        if not self.peephole:
            return None, None, None
        if self.coupled:
            return None, self.peep[0], self.peep[1]
        return self.peep[0], self.peep[1], self.peep[2]

    def finish(self, z: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        """(h', m') from the pre-activations z (the GEMM already done, as the scan backend
        does it for all time steps at once)."""
        return lstm_pointwise(z, m, self.peepholes(), self.coupled, self.output_form)

    def forward(self, H: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        return self.finish(self.gates(H), m)


# The LSTM arithmetic after the gate GEMM, shared by `LSTMTransform` and the layer-batched
# hyperplane scheduler so the two cannot drift apart: the kernel layer's op (native or
# PyTorch, chosen there).
lstm_pointwise = ops.gates


class NonLSTMTransform(nn.Module):
    """A non-LSTM dimension (paper 3.3): h' = act(V H + b); the memory passes through."""

    def __init__(
        self, in_features: int, hidden_size: int, *, activation: str = "tanh", bias: bool = True
    ) -> None:
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation
        self.linear = nn.Linear(in_features, hidden_size, bias=bias)

    def finish(self, z: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        """(h', m) from the pre-activations z: the memory passes through."""
        return ACTIVATIONS[self.activation](z), m

    def forward(self, H: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        return self.finish(self.linear(H), m)


class GridBlock(nn.Module):
    """One N-dimensional block: N (h, m) pairs in, N (h', m') pairs out.

    Args:
        num_dims: N.
        hidden_size: d, the size of every h and m.
        kinds: per dimension, ``"lstm"`` or ``"nonlstm"`` (default all LSTM).
        priority: ordered priority dimensions (indices); the rest are computed first.
        share_dims: one transform (one weight matrix) for all N dimensions (TensorFlow's
            ``tied=True``, paper 3.5 (c), docs/model.md 1.4); needs all kinds equal.
        shared: ready-made transforms to use for some dimensions (index -> module), e.g. the
            depth LSTM shared across layers (paper 3.5 (b), docs/model.md 1.4).
        output_form: ``standard`` h' = o * tanh(m') or ``paper`` h' = tanh(o * m').
        bias: biases on the transforms.
        forget_bias: initial forget-gate bias.
        peephole: peephole connections.
        coupled: coupled input-forget gate (i = 1 - f).
        activation: of non-LSTM dimensions: ``tanh``, ``relu`` or ``sigmoid``.
    """

    def __init__(
        self,
        num_dims: int,
        hidden_size: int,
        *,
        kinds: Sequence[str] | None = None,
        priority: Sequence[int] = (),
        share_dims: bool = False,
        shared: dict[int, nn.Module] | None = None,
        output_form: str = "standard",
        bias: bool = True,
        forget_bias: float = 1.0,
        peephole: bool = False,
        coupled: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        check_positive("num_dims", num_dims)
        check_positive("hidden_size", hidden_size)
        kinds = list(kinds) if kinds is not None else ["lstm"] * num_dims
        if len(kinds) != num_dims:
            raise ValueError(f"kinds must name {num_dims} dimensions, got {kinds!r}")
        for kind in kinds:
            check_choice("kinds", kind, KINDS)
        check_choice("activation", activation, ACTIVATIONS)
        priority = list(priority)
        for dim in priority:
            check_choice("priority", dim, range(num_dims))
        if len(set(priority)) != len(priority):
            raise ValueError(f"priority lists a dimension twice: {priority!r}")
        if share_dims and len(set(kinds)) > 1:
            raise ValueError("share_dims=True needs every dimension of the same kind")
        self.num_dims, self.hidden_size = num_dims, hidden_size
        self.kinds, self.priority = kinds, priority
        self.order = [i for i in range(num_dims) if i not in priority] + priority
        in_features = num_dims * hidden_size

        def make(kind: str) -> nn.Module:
            if kind == "lstm":
                return LSTMTransform(
                    in_features,
                    hidden_size,
                    output_form=output_form,
                    bias=bias,
                    forget_bias=forget_bias,
                    peephole=peephole,
                    coupled=coupled,
                )
            return NonLSTMTransform(in_features, hidden_size, activation=activation, bias=bias)

        shared = dict(shared or {})
        if share_dims:
            one = shared.get(0) or make(kinds[0])
            transforms = [one] * num_dims
        else:
            transforms = [shared.get(i) or make(kind) for i, kind in enumerate(kinds)]
        self.transforms = nn.ModuleList(transforms)

    def forward(
        self, h: Sequence[Tensor], m: Sequence[Tensor], apply: Callable | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """N (h, m) pairs in, N out.

        ``apply(dims, H, ms) -> [(h', m') per dim]`` replaces this block's own transforms;
        it is called once for all non-priority dimensions (they read the same H) and then
        once per priority dimension. The hyperplane scheduler passes layer-batched ones.
        """
        apply = apply or self._own_transforms
        h_out, m_out = list(h), list(m)
        first_priority = len(self.order) - len(self.priority)
        groups = [self.order[:first_priority]] + [[dim] for dim in self.priority]
        for group in groups:
            if not group:
                continue
            H = torch.cat(h_out, dim=-1)  # every dimension computed so far is new
            for dim, (h_new, m_new) in zip(
                group, apply(group, H, [m[i] for i in group]), strict=True
            ):
                h_out[dim], m_out[dim] = h_new, m_new
        return h_out, m_out

    def _own_transforms(
        self, dims: list[int], H: Tensor, ms: list[Tensor]
    ) -> list[tuple[Tensor, Tensor]]:
        return [self.transforms[dim](H, m) for dim, m in zip(dims, ms, strict=True)]

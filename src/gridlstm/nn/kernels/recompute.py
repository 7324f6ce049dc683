"""Differentiable backwards for the fast steps: under ``create_graph=True`` (gradient
penalties, Hessian-vector products) a native or fused backward recomputes its forward with
the PyTorch reference, from the inputs it saved, and differentiates that, so that second
derivatives are the reference's. Pure PyTorch: importable without any built library."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.kernels import time_loop
from gridlstm.nn.kernels.gates import lstm_reference

if TYPE_CHECKING:
    from gridlstm.nn.kernels.plans import Layout


def differentiable_backward(
    reference,
    inputs: tuple,
    needs: tuple[bool, ...],
    outputs_grad: tuple,
) -> list[Tensor | None]:
    """The gradients of ``reference(*inputs)`` (the PyTorch computation of a native op's
    outputs) for the inputs in ``needs``, as a graph (``create_graph=True``): the backward
    of a native op under double backward. Inputs that need no gradient get None."""
    wanted = [x for x, need in zip(inputs, needs, strict=True) if need]
    with torch.enable_grad(), dispatch.reference():
        outputs = reference(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, outputs_grad, strict=True) if g is not None]
    grads = iter(
        torch.autograd.grad(
            [o for o, _ in pairs],
            wanted,
            [g for _, g in pairs],
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
    )
    return [next(grads) if need else None for need in needs]


def reference_cell(paper: bool) -> time_loop.Cell:
    """The plain LSTM arithmetic (no peepholes, not coupled) in the output form of a native
    or fused scan: the cell its recomputation runs `gridlstm.nn.kernels.time_loop` with."""
    return functools.partial(
        lstm_reference,
        peep=(None,) * 3,
        coupled=False,
        output_form="paper" if paper else "standard",
    )


def recurrence_reference(time_in, h0, c0, w_prev, real, paper):
    """A 2-LSTM layer's time recurrence in PyTorch, from its input half ``time_in`` (T, B,
    4d): (hs, ms) each (T, B, d); rows where ``real`` (T, B, 1) is False keep the state."""
    return time_loop.recurrence(reference_cell(paper), time_in, h0, c0, w_prev, real)


def priority_reference(depth_in, m_depth, h0, c0, weights, real, papers):
    """A 2-LSTM layer's time-priority recurrence in PyTorch, from the depth transform's input
    half ``depth_in`` (T, B, 4d): (hs, ms, hds, mds) each (T, B, d)."""
    cells = [reference_cell(paper) for paper in papers]
    return time_loop.priority_recurrence(*cells, depth_in, m_depth, h0, c0, weights, real)


def hyperplane_reference(
    layout: Layout,
    dropout: float,
    static: Tensor,
    params: tuple,
    noises: list[Tensor],
    forms: tuple[str, ...] | None = None,
    picks: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Every hyperplane step in recorded PyTorch ops with the forward's dropout ``noises``:
    the outputs (2, rows_out, B, d), or the rows ``picks`` (of h, then of m)."""
    from gridlstm.nn.kernels.pytorch_steps import steps_forward

    forms = forms or ("standard",) * len(layout.transforms)
    out = steps_forward(layout, static.dtype, dropout, static, params, False, noises, forms)[0]
    if picks is None:
        return out
    return torch.cat([out[0].index_select(0, picks[0]), out[1].index_select(0, picks[1])])

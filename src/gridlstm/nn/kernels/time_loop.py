"""A 2-LSTM layer's time recurrence in PyTorch (the scan's per-op loop), written once.

Two callers need the same loop: the scan backend where no native or fused step runs (its
per-op loop, the reference), and the double backward of the native and fused scans, which
recomputes their forward in recorded PyTorch ops and differentiates that
(`gridlstm.nn.kernels.recompute`). Both go through the functions here, so the function the
fast scans are checked against and the one their second derivatives come from cannot drift
apart.

A ``cell`` is the gate arithmetic after the GEMM, ``(z, m) -> (h', m')``: a transform's own
(`gridlstm.nn.block.LSTMTransform.finish`, peepholes and all) in the backend, the plain
`gridlstm.nn.kernels.gates.lstm_reference` in a recomputation. The step functions are
module-level so that ``compile`` can compile each once (`gridlstm.nn.backends.compiled`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Pair = tuple[Tensor, Tensor]
Cell = Callable[[Tensor, Tensor], Pair]


def recurrence_step(
    cell: Cell, z_in: Tensor, h: Tensor, m: Tensor, w_prev: Tensor, real: Tensor | None
) -> Pair:
    """One time step without time priority: the h_{t-1} half of the time transform's GEMM
    added to its precomputed input half ``z_in``, then the gate arithmetic. Rows where
    ``real`` (B, 1) is False keep the state (padding steps)."""
    h_new, m_new = cell(torch.addmm(z_in, h, w_prev), m)
    if real is not None:
        h_new, m_new = torch.where(real, h_new, h), torch.where(real, m_new, m)
    return h_new, m_new


def priority_step(
    time_cell: Cell,
    depth_cell: Cell,
    depth_in: Tensor,
    m_depth: Tensor,
    h: Tensor,
    m: Tensor,
    w_depth_prev: Tensor,
    w_time_prev: Tensor,
    w_time_new: Tensor,
    b_time: Tensor | None,
    real: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One time step with time priority: the depth transform first (it reads h_{t-1}),
    then the time transform from h_{t-1} and the new depth vector. Returns (h, m, h_depth',
    m_depth')."""
    hd, md = depth_cell(torch.addmm(depth_in, h, w_depth_prev), m_depth)
    z = h @ w_time_prev if b_time is None else torch.addmm(b_time, h, w_time_prev)
    h_new, m_new = time_cell(torch.addmm(z, hd, w_time_new), m)
    if real is not None:
        h_new, m_new = torch.where(real, h_new, h), torch.where(real, m_new, m)
    return h_new, m_new, hd, md


STEPS: dict[str, Callable] = {"recurrence": recurrence_step, "priority": priority_step}


def _steps(x: Tensor, keeps: Tensor | None) -> tuple[Sequence[Tensor], Sequence]:
    # unbind, not [t]: one backward node for all steps instead of a zero-filled (T, B, G)
    # gradient per step.
    return x.unbind(0), [None] * x.shape[0] if keeps is None else keeps.unbind(0)


def recurrence(
    cell: Cell,
    time_in: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_prev: Tensor,
    real: Tensor | None,
    step: Callable = recurrence_step,
) -> Pair:
    """The time recurrence from its input half ``time_in`` (T, B, G) (what does not depend
    on h_{t-1}, for all steps at once): (hs, ms) each (T, B, d). Rows where ``real``
    (T, B, 1) is False keep the state; ``step``: `recurrence_step` or a compiled one."""
    inputs, keeps = _steps(time_in, real)
    h, m, hs, ms = h0, c0, [], []
    for t in range(len(inputs)):
        h, m = step(cell, inputs[t], h, m, w_prev, keeps[t])
        hs.append(h)
        ms.append(m)
    return torch.stack(hs), torch.stack(ms)


def priority_recurrence(
    time_cell: Cell,
    depth_cell: Cell,
    depth_in: Tensor,
    m_depth: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: tuple[Tensor, Tensor, Tensor, Tensor | None],
    real: Tensor | None,
    step: Callable = priority_step,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The time recurrence with time priority, both transforms in the loop: ``depth_in``
    (T, B, G) the depth transform's input half and bias for all steps, ``m_depth`` (T, B, d)
    the depth memory from below, ``weights`` (w_depth_prev, w_time_prev, w_time_new,
    b_time) as `priority_step` takes them. Returns (hs, ms, h_depth', m_depth'), each
    (T, B, d)."""
    inputs, keeps = _steps(depth_in, real)
    memories = m_depth.unbind(0)
    h, m, out = h0, c0, ([], [], [], [])
    for t in range(len(inputs)):
        h, m, hd, md = step(time_cell, depth_cell, inputs[t], memories[t], h, m, *weights, keeps[t])
        for values, x in zip(out, (h, m, hd, md), strict=True):
            values.append(x)
    return tuple(torch.stack(values) for values in out)

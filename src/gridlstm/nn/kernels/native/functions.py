"""Autograd for the native ops: the gate op as a `torch.library` custom op with
`register_autograd` (usable anywhere, traceable through its fake kernel), and the whole-loop
ops (hyperplane steps, scan time loops) as autograd Functions whose backward is the matching
native loop. Importing this module loads (or builds) the library; ImportError if it cannot.

Every backward is differentiable: under ``create_graph=True`` (gradient penalties,
Hessian-vector products) it recomputes the forward with the PyTorch reference from the saved
inputs and differentiates that, so second derivatives are the reference's; otherwise the
native backward runs without building a graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gridlstm.nn.kernels import recompute
from gridlstm.nn.kernels.gates import lstm_reference
from gridlstm.nn.kernels.native import build

if TYPE_CHECKING:
    from gridlstm.nn.kernels.plans import Layout

if not build.load():
    raise ImportError(f"the native library is not available: {build.build_info()['reason']}")
ops = torch.ops.gridlstm


# ---------------------------------------------------------------- the gate op


@torch.library.register_fake("gridlstm::lstm_gates")
def _gates_fake(z: Tensor, m: Tensor, paper: bool) -> tuple[Tensor, Tensor, Tensor]:
    n, rows, d = m.shape  # the real kernel returns new contiguous buffers in m's dtype
    return m.new_empty(n, rows, d), m.new_empty(n, rows, d), m.new_empty(rows, n * 5 * d)


@torch.library.register_fake("gridlstm::lstm_gates_backward")
def _gates_backward_fake(
    dh: Tensor, dm_new: Tensor, act: Tensor, m: Tensor, m_new: Tensor, paper: bool
) -> tuple[Tensor, Tensor]:
    n, rows, d = m.shape
    return m.new_empty(rows, n * 4 * d), m.new_empty(n, rows, d)


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _gates_setup(ctx, inputs: tuple, output: tuple) -> None:
    z, m, paper = inputs
    h, m_new, act = output
    ctx.save_for_backward(act, m, m_new, z)
    ctx.paper, ctx.z_dtype = paper, z.dtype
    # act is saved for backward, not a result: without this autograd hands backward a zero
    # (M, n*5d) gradient for it (a fill 1.5x the size of z, ~6% of a small model's step).
    ctx.mark_non_differentiable(act)
    ctx.set_materialize_grads(False)


def _gates_reference(z: Tensor, m: Tensor, paper: bool) -> tuple[Tensor, Tensor]:
    """The gate op's function in PyTorch, in its layout: z (M, n*4d), m (n, M, d)."""
    n, rows, d = m.shape
    h, m_new = lstm_reference(
        z.view(rows, n, 4 * d),
        m.permute(1, 0, 2),
        (None, None, None),
        False,
        "paper" if paper else "standard",
    )
    return h.permute(1, 0, 2), m_new.permute(1, 0, 2)


def _gates_backward(ctx, dh: Tensor | None, dm_new: Tensor | None, _dact: None) -> tuple:
    act, m, m_new, z = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: a differentiable backward is wanted
        dz, dm = recompute.differentiable_backward(
            lambda z_, m_: _gates_reference(z_, m_, ctx.paper),
            (z, m),
            tuple(ctx.needs_input_grad[:2]),
            (dh, dm_new),
        )
        return dz, dm, None
    dh, dm_new = _zeros_if_none(dh, m), _zeros_if_none(dm_new, m)
    dz, dm = ops.lstm_gates_backward(dh, dm_new, act, m, m_new, ctx.paper)
    return dz.to(ctx.z_dtype), dm, None


torch.library.register_autograd("gridlstm::lstm_gates", _gates_backward, setup_context=_gates_setup)


def lstm_gates(z: Tensor, m: Tensor, paper: bool) -> tuple[Tensor, Tensor]:
    """`gridlstm.nn.kernels.gates.lstm_reference` without peepholes or coupled gates, fused:
    z (..., 4d) pre-activations and m (..., d) in one dtype, float32 or float64."""
    d = m.shape[-1]
    h, m_new, _ = ops.lstm_gates(z.reshape(-1, 4 * d), m.reshape(1, -1, d), paper)
    return h.view(m.shape), m_new.view(m.shape)


# ---------------------------------------------------------------- hyperplane steps


def _flat_groups(layout: Layout) -> tuple[list[int], list[int]]:
    dims = [dim for group in layout.transforms for dim in group.dims]
    return dims, [len(group.dims) for group in layout.transforms]


class NativeHyperplaneSteps(torch.autograd.Function):
    """`gridlstm.nn.kernels.handwritten.HyperplaneSteps` with its loop in C++:
    same arguments (without the GEMM dtype: no autocast here), same result."""

    @staticmethod
    def forward(
        ctx, layout: Layout, dropout: float, picks: tuple, static: Tensor, *params: Tensor | None
    ) -> Tensor:
        count = len(layout.transforms)
        weights, biases = list(params[:count]), params[count:]
        dims, sizes = _flat_groups(layout)
        keep = any(ctx.needs_input_grad)
        none = static.new_empty(0)
        rows, Hs, acts, m_all, noises = ops.hyperplane_forward(
            static,
            weights,
            [none if b is None else b for b in biases],
            list(layout.index_h),
            list(layout.index_m),
            list(layout.slots),
            list(layout.starts),
            dims,
            sizes,
            layout.groups,
            dropout,
            keep,
            *picks,
        )
        ctx.layout, ctx.count, ctx.picks, ctx.dropout = layout, count, picks, dropout
        ctx.has_bias = [int(b is not None) for b in biases]
        ctx.save_for_backward(*weights, *Hs, *acts, m_all, static, *biases, *noises)
        return rows

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        layout, count = ctx.layout, ctx.count
        saved = list(ctx.saved_tensors)
        weights, Hs, acts = saved[:count], saved[count : 2 * count], saved[2 * count : 3 * count]
        m_all, static = saved[3 * count], saved[3 * count + 1]
        biases, noise = saved[3 * count + 2 : 4 * count + 2], saved[4 * count + 2 :]
        if torch.is_grad_enabled():  # create_graph=True: the PyTorch steps, recorded

            def again(static: Tensor, *params: Tensor | None) -> tuple[Tensor]:
                rows = recompute.hyperplane_reference(
                    layout, ctx.dropout, static, params, noise, picks=ctx.picks
                )
                return (rows,)

            grads = recompute.differentiable_backward(
                again, (static, *weights, *biases), tuple(ctx.needs_input_grad[3:]), (grad,)
            )
            return (None, None, None, *grads)
        dims, sizes = _flat_groups(layout)
        dstatic, dweights, dbiases = ops.hyperplane_backward(
            grad,
            weights,
            Hs,
            acts,
            m_all,
            noise,
            list(layout.index_h),
            list(layout.index_m),
            list(layout.slots),
            list(layout.starts),
            dims,
            sizes,
            layout.groups,
            layout.static_rows,
            ctx.has_bias,
            *ctx.picks,
        )
        dbiases = [db if has else None for db, has in zip(dbiases, ctx.has_bias, strict=True)]
        return (None, None, None, dstatic, *dweights, *dbiases)


def hyperplane_steps(
    layout: Layout,
    static: Tensor,
    params: list,
    picks: tuple[Tensor, Tensor],
    dropout: float = 0.0,
) -> Tensor:
    """The output rows ``picks`` (of h, then of m), as `handwritten.run` returns them (the
    same signature: every hyperplane step takes layout, static, params, picks, dropout)."""
    with torch.autocast("cpu", enabled=False):
        return NativeHyperplaneSteps.apply(layout, dropout, picks, static, *params)


# ---------------------------------------------------------------- scan time loops


class NativeScan(torch.autograd.Function):
    """A 2-LSTM layer's time loop without time priority, from its input half: time_in
    (T, B, 4d), h0/c0 (B, d), w_prev (d, 4d), real (T, B, 1) or None -> hs, ms (T, B, d)."""

    @staticmethod
    def forward(ctx, time_in, h0, c0, w_prev, real, paper):
        keep = any(ctx.needs_input_grad)
        hs, ms, act = ops.scan_forward(time_in, h0, c0, w_prev, real, paper, keep)
        ctx.paper = paper
        ctx.save_for_backward(act, hs, ms, time_in, h0, c0, w_prev, real)
        return hs, ms

    @staticmethod
    def backward(ctx, dhs, dms):
        act, hs, ms, *inputs, real = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            grads = recompute.differentiable_backward(
                lambda *x: recompute.recurrence_reference(*x, real, ctx.paper),
                tuple(inputs),
                tuple(ctx.needs_input_grad[:4]),
                (dhs, dms),
            )
            return *grads, None, None
        _, h0, c0, w_prev = inputs
        dz, dh0, dc0, dw = ops.scan_backward(
            _zeros_if_none(dhs, hs),
            _zeros_if_none(dms, ms),
            act,
            hs,
            ms,
            h0,
            c0,
            w_prev,
            real,
            ctx.paper,
        )
        return dz, dh0, dc0, dw, None, None


class NativeScanPriority(torch.autograd.Function):
    """A 2-LSTM layer's time loop with time priority, from the depth transform's input half:
    depth_in (T, B, 4d), m_depth (T, B, d), h0/c0 (B, d), weights (w_depth_prev, w_time_prev,
    w_time_new (d, 4d), b_time) -> hs, ms, hds, mds (T, B, d)."""

    @staticmethod
    def forward(ctx, real, papers, depth_in, m_depth, h0, c0, *weights):
        keep = any(ctx.needs_input_grad)
        hs, ms, hds, mds, act_t, act_d = ops.scan_priority_forward(
            depth_in, m_depth, h0, c0, *weights, real, *papers, keep
        )
        ctx.papers = papers
        ctx.save_for_backward(
            act_t, act_d, hs, ms, hds, mds, real, depth_in, m_depth, h0, c0, *weights
        )
        return hs, ms, hds, mds

    @staticmethod
    def backward(ctx, dhs, dms, dhds, dmds):
        act_t, act_d, hs, ms, hds, mds, real, *inputs = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            grads = recompute.differentiable_backward(
                lambda x, md, h0, c0, *w: recompute.priority_reference(
                    x, md, h0, c0, w, real, ctx.papers
                ),
                tuple(inputs),
                tuple(ctx.needs_input_grad[2:]),
                (dhs, dms, dhds, dmds),
            )
            return None, None, *grads
        _, m_depth, h0, c0, w_dp, w_tp, w_tn, b_time = inputs
        grads = ops.scan_priority_backward(
            _zeros_if_none(dhs, hs),
            _zeros_if_none(dms, ms),
            _zeros_if_none(dhds, hds),
            _zeros_if_none(dmds, mds),
            act_t,
            act_d,
            hs,
            ms,
            hds,
            mds,
            h0,
            c0,
            m_depth,
            w_dp,
            w_tp,
            w_tn,
            real,
            *ctx.papers,
        )
        *grads, db_time = grads
        return None, None, *grads, db_time if b_time is not None else None


def recurrence(
    time_in: Tensor, h0: Tensor, c0: Tensor, w_prev: Tensor, real: Tensor | None, paper: bool
) -> tuple[Tensor, Tensor]:
    """The scan's recurrence in C++ (`gridlstm.nn.kernels.ops.scan_recurrence`'s signature)."""
    return NativeScan.apply(time_in, h0, c0, w_prev, real, paper)


def priority_recurrence(
    depth_in: Tensor,
    m_depth: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: tuple[Tensor, Tensor, Tensor, Tensor | None],
    real: Tensor | None,
    papers: tuple[bool, bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The scan's time-priority recurrence in C++ (`gridlstm.nn.kernels.ops.scan_priority`'s
    signature)."""
    return NativeScanPriority.apply(real, papers, depth_in, m_depth, h0, c0, *weights)

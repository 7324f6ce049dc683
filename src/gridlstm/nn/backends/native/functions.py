"""Autograd for the native ops: the gate op as a `torch.library` custom op with
`register_autograd` (usable anywhere, traceable through its fake kernel), and the whole-loop
ops (hyperplane steps, scan time loops) as autograd Functions whose backward is the matching
native loop. Importing this module loads (or builds) the library; ImportError if it cannot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gridlstm.nn.backends.native import build

if TYPE_CHECKING:
    from gridlstm.nn.backends.hyperplane.handwritten import Layout

if not build.load():
    raise ImportError(f"the native library is not available: {build.build_info()['reason']}")
ops = torch.ops.gridlstm


# ---------------------------------------------------------------- the gate op


@torch.library.register_fake("gridlstm::lstm_gates")
def _gates_fake(z: Tensor, m: Tensor, paper: bool) -> tuple[Tensor, Tensor, Tensor]:
    n, rows, d = m.shape
    return torch.empty_like(m), torch.empty_like(m), m.new_empty(rows, n * 5 * d)


@torch.library.register_fake("gridlstm::lstm_gates_backward")
def _gates_backward_fake(
    dh: Tensor, dm_new: Tensor, act: Tensor, m: Tensor, m_new: Tensor, paper: bool
) -> tuple[Tensor, Tensor]:
    n, rows, d = m.shape
    return m.new_empty(rows, n * 4 * d), torch.empty_like(m)


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _gates_setup(ctx, inputs: tuple, output: tuple) -> None:
    z, m, paper = inputs
    h, m_new, act = output
    ctx.save_for_backward(act, m, m_new, z)
    ctx.paper, ctx.z_dtype = paper, z.dtype


def _gates_backward(ctx, dh: Tensor | None, dm_new: Tensor | None, _dact: None) -> tuple:
    act, m, m_new, z = ctx.saved_tensors
    dh, dm_new = _zeros_if_none(dh, m), _zeros_if_none(dm_new, m)
    if torch.is_grad_enabled():  # create_graph=True: a differentiable backward is wanted
        return (*_pytorch_gates_backward(z, m, dh, dm_new, ctx.paper), None)
    dz, dm = ops.lstm_gates_backward(dh, dm_new, act, m, m_new, ctx.paper)
    return dz.to(ctx.z_dtype), dm, None


def _pytorch_gates_backward(
    z: Tensor, m: Tensor, dh: Tensor, dm_new: Tensor, paper: bool
) -> tuple[Tensor, Tensor]:
    """The gate op's backward through the PyTorch arithmetic, itself differentiable: double
    backward (gradient penalties, Hessian-vector products) gets true second derivatives."""
    from gridlstm.nn.backends.native import python_steps
    from gridlstm.nn.block import lstm_pointwise

    n, rows, d = m.shape
    with python_steps():
        h, m_new = lstm_pointwise(
            z.view(rows, n, 4 * d), m.permute(1, 0, 2), (None, None, None), False,
            "paper" if paper else "standard",
        )  # fmt: skip
    grads = (dh.permute(1, 0, 2), dm_new.permute(1, 0, 2))
    dz, dm = torch.autograd.grad((h, m_new), (z, m), grads, create_graph=True)
    return dz, dm


torch.library.register_autograd(
    "gridlstm::lstm_gates", _gates_backward, setup_context=_gates_setup
)


def lstm_gates(z: Tensor, m: Tensor, paper: bool) -> tuple[Tensor, Tensor]:
    """`gridlstm.nn.block.lstm_pointwise` without peepholes or coupled gates, fused:
    z (..., 4d) pre-activations (float32/64, or bf16 computed in m's type), m (..., d)."""
    d = m.shape[-1]
    h, m_new, _ = ops.lstm_gates(z.reshape(-1, 4 * d), m.reshape(1, -1, d), paper)
    return h.view(m.shape), m_new.view(m.shape)


# ---------------------------------------------------------------- hyperplane steps


def _flat_groups(layout: Layout) -> tuple[list[int], list[int]]:
    dims = [dim for group in layout.transforms for dim in group.dims]
    return dims, [len(group.dims) for group in layout.transforms]


class NativeHyperplaneSteps(torch.autograd.Function):
    """`gridlstm.nn.backends.hyperplane.handwritten.HyperplaneSteps` with its loop in C++:
    same arguments (without the GEMM dtype: no autocast here), same result."""

    @staticmethod
    def forward(  # noqa: D102
        ctx, layout: Layout, dropout: float, picks: tuple, static: Tensor, *params: Tensor | None
    ) -> Tensor:
        count = len(layout.transforms)
        weights, biases = list(params[:count]), params[count:]
        dims, sizes = _flat_groups(layout)
        keep = any(ctx.needs_input_grad)
        none = static.new_empty(0)
        rows, Hs, acts, m_all, noises = ops.hyperplane_forward(
            static, weights, [none if b is None else b for b in biases],
            list(layout.index_h), list(layout.index_m), list(layout.slots),
            list(layout.starts), dims, sizes, layout.groups, dropout, keep, *picks,
        )  # fmt: skip
        ctx.layout, ctx.count, ctx.picks = layout, count, picks
        ctx.has_bias = [int(b is not None) for b in biases]
        ctx.save_for_backward(*weights, *Hs, *acts, m_all, *noises)
        return rows

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple:  # noqa: D102
        layout, count = ctx.layout, ctx.count
        saved = list(ctx.saved_tensors)
        weights, Hs, acts = saved[:count], saved[count : 2 * count], saved[2 * count : 3 * count]
        m_all, noise = saved[3 * count], saved[3 * count + 1 :]
        dims, sizes = _flat_groups(layout)
        dstatic, dweights, dbiases = ops.hyperplane_backward(
            grad, weights, Hs, acts, m_all, noise, list(layout.index_h), list(layout.index_m),
            list(layout.slots), list(layout.starts), dims, sizes, layout.groups,
            layout.static_rows, ctx.has_bias, *ctx.picks,
        )  # fmt: skip
        dbiases = [db if has else None for db, has in zip(dbiases, ctx.has_bias, strict=True)]
        return (None, None, None, dstatic, *dweights, *dbiases)


def hyperplane_steps(
    layout: Layout, static: Tensor, params: list, dropout: float, picks: tuple[Tensor, Tensor]
) -> Tensor:
    """The output rows ``picks`` (of h, then of m), as `handwritten.run` returns them."""
    with torch.autocast("cpu", enabled=False):
        return NativeHyperplaneSteps.apply(layout, dropout, picks, static, *params)


# ---------------------------------------------------------------- scan time loops


class NativeScan(torch.autograd.Function):
    """A 2-LSTM layer's time loop without time priority (`gridlstm.nn.backends.scan.layer`):
    z_in (T, B, 4d) input halves with bias, h0/c0 (B, d), w_prev (d, 4d), real (T, B, 1) or
    None -> hs, ms (T, B, d)."""

    @staticmethod
    def forward(ctx, z_in, h0, c0, w_prev, real, paper):  # noqa: D102
        keep = any(ctx.needs_input_grad)
        hs, ms, act = ops.scan_forward(z_in, h0, c0, w_prev, real, paper, keep)
        ctx.paper = paper
        ctx.save_for_backward(act, hs, ms, h0, c0, w_prev, real)
        return hs, ms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dhs, dms):  # noqa: D102
        act, hs, ms, h0, c0, w_prev, real = ctx.saved_tensors
        dz, dh0, dc0, dw = ops.scan_backward(
            _zeros_if_none(dhs, hs), _zeros_if_none(dms, ms), act, hs, ms, h0, c0, w_prev,
            real, ctx.paper,
        )  # fmt: skip
        return dz, dh0, dc0, dw, None, None


class NativeScanPriority(torch.autograd.Function):
    """A 2-LSTM layer's time loop with time priority: depth_in (T, B, 4d) the depth
    transform's input half with bias, m_depth (T, B, d), h0/c0 (B, d), weights (d, 4d)
    -> hs, ms, hds, mds (T, B, d)."""

    @staticmethod
    def forward(  # noqa: D102
        ctx, depth_in, m_depth, h0, c0, w_depth_prev, w_time_prev, w_time_new, b_time, real,
        paper_time, paper_depth,
    ):  # fmt: skip
        keep = any(ctx.needs_input_grad)
        hs, ms, hds, mds, act_t, act_d = ops.scan_priority_forward(
            depth_in, m_depth, h0, c0, w_depth_prev, w_time_prev, w_time_new, b_time, real,
            paper_time, paper_depth, keep,
        )  # fmt: skip
        ctx.papers, ctx.has_bias = (paper_time, paper_depth), b_time is not None
        ctx.save_for_backward(
            act_t, act_d, hs, ms, hds, mds, h0, c0, m_depth, w_depth_prev, w_time_prev,
            w_time_new, real,
        )  # fmt: skip
        return hs, ms, hds, mds

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dhs, dms, dhds, dmds):  # noqa: D102
        saved = ctx.saved_tensors
        act_t, act_d, hs, ms, hds, mds = saved[:6]
        grads = ops.scan_priority_backward(
            _zeros_if_none(dhs, hs), _zeros_if_none(dms, ms), _zeros_if_none(dhds, hds),
            _zeros_if_none(dmds, mds), act_t, act_d, hs, ms, hds, mds, *saved[6:], *ctx.papers,
        )  # fmt: skip
        d_in, d_m_depth, dh0, dc0, dw_dp, dw_tp, dw_tn, db_time = grads
        db_time = db_time if ctx.has_bias else None
        return d_in, d_m_depth, dh0, dc0, dw_dp, dw_tp, dw_tn, db_time, None, None, None

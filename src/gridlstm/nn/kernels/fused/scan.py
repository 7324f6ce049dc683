"""The scan's time recurrence (`gridlstm.nn.backends.scan`, depth or no priority) with the
fused Triton step: one kernel launch per time step and layer in the forward.

A time step is the hyperplane kernel's case of one dimension, one group and one slot: it
reads h_{t-1} from row t of a (T + 1, B, d) buffer of the layer's hidden vectors (row 0 is
the incoming state), multiplies it by the recurrent half of the time transform, adds the
precomputed input half (one GEMM for all steps, done by the caller) and runs the standard
or paper-form LSTM arithmetic, writing h_t and m_t into row t + 1. The backward runs the
gate-derivative kernel per step and one GEMM for the gradient of h_{t-1}; the recurrent
weight's gradient is one GEMM over all steps at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gridlstm.nn.dispatch import interpreting
from gridlstm.nn.kernels import recompute
from gridlstm.nn.kernels.fused import kernels
from gridlstm.nn.kernels.fused.steps import (
    BLOCK_D,
    BLOCK_K,
    BLOCK_M,
    dot_precision,
    launch_device,
    triton_cdiv,
    upcast,
)


class FusedRecurrence(torch.autograd.Function):
    """(time_in (T, B, 4d), h0, c0 (B, d), w_prev (d, 4d)) -> (h (T, B, d), m (T, B, d))."""

    @staticmethod
    def forward(
        ctx, paper: bool, interpret: bool, time_in: Tensor, h0: Tensor, c0: Tensor, w_prev: Tensor
    ) -> tuple[Tensor, Tensor]:
        run = kernels.build(interpret)
        time_in_given = time_in
        steps, batch, n4 = time_in.shape
        d = n4 // 4
        dtype = time_in.dtype
        h = time_in.new_empty(steps + 1, batch, d)
        m = time_in.new_empty(steps + 1, batch, d)
        h[0], m[0] = h0, c0
        w = w_prev.to(dtype).contiguous()[None]
        time_in = time_in.contiguous()
        z = torch.empty_like(time_in)
        rows = torch.arange(steps + 1, device=time_in.device)
        dims = rows[:1]  # the one dimension, 0
        grid = (triton_cdiv(batch, BLOCK_M), triton_cdiv(d, BLOCK_D))
        for t in range(steps):
            at = rows[t : t + 1]
            run.step_forward[grid](
                h,
                m,
                at,
                at,
                dims,
                w,
                w,
                time_in[t],
                h,
                z[t],
                h,
                t + 1,
                batch,
                batch,
                d,
                1,
                1,
                d,
                n4,
                0,
                0,
                0,
                HAS_BIAS=False,
                HAS_ZIN=True,
                HAS_DROP=False,
                PAPER=paper,
                SAVE=True,
                SAVE_H=False,
                PRECISION=dot_precision(dtype, interpret),
                UPCAST=upcast(dtype, interpret),
                BLOCK_M=BLOCK_M,
                BLOCK_D=BLOCK_D,
                BLOCK_K=BLOCK_K,
            )
        ctx.paper, ctx.interpret, ctx.w_dtype = paper, interpret, w_prev.dtype
        ctx.save_for_backward(h, m, w, z, time_in_given, h0, c0, w_prev)
        return h[1:], m[1:]

    @staticmethod
    def backward(ctx, grad_h: Tensor, grad_m: Tensor) -> tuple:
        if torch.is_grad_enabled():  # create_graph=True: the PyTorch recurrence, recorded
            inputs = tuple(ctx.saved_tensors[4:])
            grads = recompute.differentiable_backward(
                lambda x, h0, c0, w: recompute.recurrence_reference(
                    x, h0, c0, w.to(x.dtype), None, ctx.paper
                ),
                inputs,
                tuple(ctx.needs_input_grad[2:]),
                (grad_h, grad_m),
            )
            return None, None, *grads
        return FusedRecurrence._backward(ctx, grad_h, grad_m)

    @staticmethod
    @once_differentiable
    def _backward(ctx, grad_h: Tensor, grad_m: Tensor) -> tuple:
        h, m, w, z = ctx.saved_tensors[:4]
        run = kernels.build(ctx.interpret)
        steps, batch, n4 = z.shape
        d = n4 // 4
        grad_h = grad_h.to(h.dtype).contiguous()
        grad_m = grad_m.to(h.dtype).contiguous()
        dz = torch.empty_like(z)
        carry_h = h.new_zeros(batch, d)
        carry_m = h.new_zeros(batch, d)
        rows = torch.arange(steps + 1, device=h.device)
        grid = (triton_cdiv(batch, BLOCK_M), triton_cdiv(d, BLOCK_D))
        w_t = w[0].t()
        for t in reversed(range(steps)):
            dh = grad_h[t] + carry_h
            dm = grad_m[t] + carry_m
            carry_m = torch.empty_like(dm)
            run.step_backward[grid](
                z[t],
                m,
                rows[t : t + 1],
                rows[:1],
                dh,
                dm,
                dz[t],
                carry_m,
                batch,
                batch,
                batch,
                d,
                1,
                1,
                n4,
                PAPER=ctx.paper,
                BLOCK_M=BLOCK_M,
                BLOCK_D=BLOCK_D,
            )
            carry_h = dz[t] @ w_t
        dw = (h[:steps].reshape(-1, d).t() @ dz.reshape(-1, n4)).to(ctx.w_dtype)
        return None, None, dz, carry_h, carry_m, dw


def recurrence(
    time_in: Tensor, h0: Tensor, c0: Tensor, w_prev: Tensor, real: Tensor | None, paper: bool
) -> tuple[Tensor, Tensor]:
    """All time steps of one layer: (h (T, B, d), m (T, B, d)) (`gridlstm.nn.kernels.ops.
    scan_recurrence`'s signature; ``real`` must be None: `ops.scan` steps aside for sequence
    lengths)."""
    if real is not None:
        raise ValueError("the fused recurrence runs no sequence lengths (real must be None)")
    with launch_device(time_in):
        return FusedRecurrence.apply(paper, interpreting(), time_in, h0, c0, w_prev)

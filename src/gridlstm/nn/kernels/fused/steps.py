"""All hyperplane steps of a plan with the fused Triton step (`kernels`): the same function
and layout as `gridlstm.nn.kernels.handwritten.HyperplaneSteps`, one kernel
launch per transform group and step in the forward.

A block computes its transforms in groups (the non-priority dimensions from one H, then
each priority dimension from H with the new hidden vectors of the dimensions before it).
Here a later group simply gathers those columns from this step's output rows, which the
earlier group's kernel has just written: `Sources` holds, per step and group, the buffer row
of every cell's incoming h. The backward walks the steps in reverse: the gate derivatives in
one kernel per group, dH = dz W^T as one cuBLAS GEMM, the gradients routed back to their
rows with one `index_add_` per part; the weight gradients are one GEMM per group over all
steps at the end (the forward kept every step's gathered H and pre-activations).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gridlstm.nn.kernels import recompute
from gridlstm.nn.kernels.fused import kernels
from gridlstm.nn.kernels.fused.matmul_precision import allows_tf32
from gridlstm.nn.kernels.plans import Layout, Sources, depth_mask

BLOCK_M, BLOCK_D, BLOCK_K = 32, 32, 32


def dot_precision(dtype: torch.dtype, interpret: bool = False) -> str:
    """tl.dot's input precision: float32 GEMMs as torch runs them (IEEE unless
    torch.backends.cuda.matmul.allow_tf32 allows TF32); 16-bit types keep Triton's default
    (the setting concerns float32 operands only); tiles the interpreter casts up
    (`upcast`) multiply in IEEE float32."""
    if upcast(dtype, interpret) or (dtype == torch.float32 and not allows_tf32()):
        return "ieee"
    return "tf32"


def upcast(dtype: torch.dtype, interpret: bool) -> bool:
    """Whether the kernels cast their GEMM tiles to float32 first: bfloat16 in Triton's
    interpreter, whose bfloat16 ``tl.dot`` is wrong (`gridlstm.nn.kernels.fused.kernels`)."""
    return interpret and dtype == torch.bfloat16


def launch_device(t: Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device, not the tensors': a model on ``cuda:1``
    in a process whose current device is 0 would run its kernels on the wrong GPU. The
    backward needs nothing: autograd runs it on the device of its inputs."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


class FusedSteps(torch.autograd.Function):
    """(static, weights..., biases...) -> every step's (h, m), as `HyperplaneSteps`."""

    @staticmethod
    def forward(
        ctx,
        layout: Layout,
        where: Sources,
        paper: tuple[bool, ...],
        interpret: bool,
        dropout: float,
        static: Tensor,
        *params: Tensor | None,
    ) -> Tensor:
        run = kernels.build(interpret)
        D, G = layout.dims, layout.groups
        batch, d = static.shape[2], static.shape[3]
        count = len(layout.transforms)
        weights = [w.to(static.dtype).contiguous() for w in params[:count]]
        biases = [None if b is None else b.to(static.dtype).contiguous() for b in params[count:]]
        total = layout.starts[-1]
        buffer = static.new_empty(2, total + static.shape[1], batch, d)
        buffer[:, total:] = static
        save = any(ctx.needs_input_grad)
        rows_all = batch * sum(R // G for R in layout.slots)
        z_all = [static.new_empty(G, rows_all, w.shape[2]) for w in weights] if save else []
        h_all = [static.new_empty(G, rows_all, D * d) for _ in weights] if save else []
        # A group gathers the depth h (and so applies dropout to it) unless an earlier group
        # of the block computed the depth dimension, whose new h it then reads.
        gathers_depth, seen = [], set()
        for group in layout.transforms:
            gathers_depth.append(D - 1 not in seen)
            seen.update(group.dims)
        at, noise, masks, noises = 0, None, [], []
        for s, R in enumerate(layout.slots):
            r = R // G
            M = r * batch
            mask = None
            if noise is not None:  # as the handwritten steps draw and apply it
                mask = depth_mask(layout, s, noise).contiguous()
                masks.append(mask)
            for number in range(count):
                w, b = weights[number], biases[number]
                n4 = w.shape[2]
                grid = (G * triton_cdiv(M, BLOCK_M), (n4 // (4 * d)) * triton_cdiv(d, BLOCK_D))
                run.step_forward[grid](
                    buffer[0],
                    buffer[1],
                    where.h[s][number],
                    layout.index_m[s],
                    where.dims[number],
                    w,
                    w if b is None else b,
                    buffer,
                    buffer if mask is None else mask,
                    z_all[number][:, at:] if save else buffer,
                    h_all[number][:, at:] if save else buffer,
                    layout.starts[s],
                    M,
                    batch,
                    d,
                    R,
                    r,
                    D * d,
                    n4,
                    rows_all * n4,
                    rows_all * D * d,
                    D - 1,
                    HAS_BIAS=b is not None,
                    HAS_ZIN=False,
                    HAS_DROP=mask is not None and gathers_depth[number],
                    PAPER=paper[number],
                    SAVE=save,
                    SAVE_H=save,
                    PRECISION=dot_precision(static.dtype, interpret),
                    UPCAST=upcast(static.dtype, interpret),
                    BLOCK_M=BLOCK_M,
                    BLOCK_D=BLOCK_D,
                    BLOCK_K=BLOCK_K,
                )
            at += M
            if dropout > 0 and s + 1 < len(layout.slots):
                noise = static.new_empty(R, batch, d).bernoulli_(1 - dropout).div_(1 - dropout)
                noises.append(noise)
        ctx.layout, ctx.where, ctx.paper, ctx.interpret = layout, where, paper, interpret
        ctx.has_bias = [b is not None for b in biases]
        ctx.dtypes = [p.dtype for p in params[:count]]
        ctx.dropout, ctx.tensors = dropout, (count, len(masks))
        if save:
            ctx.save_for_backward(
                buffer, *weights, *z_all, *h_all, *masks, static, *params, *noises
            )
        return buffer[:, :total]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        if not torch.is_grad_enabled():
            return FusedSteps._backward(ctx, grad)
        # create_graph=True: the PyTorch steps in the same output forms, recorded.
        count, masks = ctx.tensors
        tail = ctx.saved_tensors[1 + 3 * count + masks :]
        static, params, noises = tail[0], tail[1 : 1 + 2 * count], list(tail[1 + 2 * count :])
        forms = tuple("paper" if p else "standard" for p in ctx.paper)

        def again(static: Tensor, *params: Tensor | None) -> tuple[Tensor]:
            params = tuple(None if p is None else p.to(static.dtype) for p in params)
            return (
                recompute.hyperplane_reference(
                    ctx.layout, ctx.dropout, static, params, noises, forms
                ),
            )

        grads = recompute.differentiable_backward(
            again, (static, *params), tuple(ctx.needs_input_grad[5:]), (grad,)
        )
        return (None, None, None, None, None, *grads)

    @staticmethod
    @once_differentiable
    def _backward(ctx, grad: Tensor) -> tuple:
        layout, where, run = ctx.layout, ctx.where, kernels.build(ctx.interpret)
        count = len(layout.transforms)
        buffer, *rest = ctx.saved_tensors[: 1 + 3 * count + ctx.tensors[1]]
        weights, z_all = rest[:count], rest[count : 2 * count]
        h_all, masks = rest[2 * count : 3 * count], rest[3 * count :]
        D, G = layout.dims, layout.groups
        batch, d = grad.shape[2], grad.shape[3]
        total = layout.starts[-1]
        grad = grad.to(buffer.dtype)
        dbuffer = grad.new_zeros(2, total + layout.static_rows, batch, d)
        dbuffer[:, :total] = grad
        dz_all = [torch.empty_like(z) for z in z_all]
        ends = [0]
        for R in layout.slots:
            ends.append(ends[-1] + (R // G) * batch)
        for s in reversed(range(len(layout.slots))):
            R = layout.slots[s]
            r, M = R // G, (R // G) * batch
            rows = slice(layout.starts[s], layout.starts[s + 1])
            dh = dbuffer[0, rows].view(D, G, r, batch, d).clone()
            dm_out = dbuffer[1, rows].view(D, G, r, batch, d)
            dm_in = torch.empty_like(dh)
            for number in reversed(range(count)):
                group = layout.transforms[number]
                n4 = z_all[number].shape[2]
                z = z_all[number][:, ends[s] : ends[s + 1]].contiguous()
                dz = torch.empty_like(z)
                grid = (triton_cdiv(G * M, BLOCK_M), (n4 // (4 * d)) * triton_cdiv(d, BLOCK_D))
                run.step_backward[grid](
                    z,
                    buffer[1],
                    layout.index_m[s],
                    where.dims[number],
                    dh,
                    dm_out,
                    dz,
                    dm_in,
                    G * M,
                    M,
                    batch,
                    d,
                    R,
                    r,
                    n4,
                    PAPER=ctx.paper[number],
                    BLOCK_M=BLOCK_M,
                    BLOCK_D=BLOCK_D,
                )
                dz_all[number][:, ends[s] : ends[s + 1]] = dz
                dH = torch.bmm(dz, weights[number].transpose(1, 2))
                # This group's new h replaced the gathered one, which reaches the output
                # only through H from here on.
                dh[group.index] = 0.0
                dh += dH.view(G, r, batch, D, d).permute(3, 0, 1, 2, 4)
            if masks and s > 0:  # the gathered depth h was multiplied by the mask
                dh[D - 1] *= masks[s - 1].view(G, r, batch, d)
            dbuffer[0].index_add_(0, layout.index_h[s], dh.reshape(D * R, batch, d))
            dbuffer[1].index_add_(0, layout.index_m[s], dm_in.reshape(D * R, batch, d))
        dweights = [
            torch.bmm(h.transpose(1, 2), dz).to(dtype)
            for h, dz, dtype in zip(h_all, dz_all, ctx.dtypes, strict=True)
        ]
        dbiases = [
            dz.sum(1, keepdim=True).to(dtype) if has else None
            for dz, has, dtype in zip(dz_all, ctx.has_bias, ctx.dtypes, strict=True)
        ]
        return (None, None, None, None, None, dbuffer[:, total:], *dweights, *dbiases)


def triton_cdiv(a: int, b: int) -> int:
    """Ceiling division for launch grids."""
    return -(-a // b)

"""The hyperplane scheduler's steps as one autograd Function with a handwritten backward.

The forward runs without autograd and keeps, per step and group, only what the backward
needs; the backward walks the steps in reverse with a few large ops each (one GEMM for the
input gradient, one accumulating GEMM for the weight gradient, the LSTM arithmetic's
derivative written out, one `index_add_` per part to route the gradients back to the rows
they were gathered from). On a 2-core CPU it measured 1.1-1.2x faster than the per-op steps
(`gridlstm.nn.backends.hyperplane.step` under autograd): both are bound by their GEMMs and by passes
of the gate arithmetic over memory (docs/benchmarks.md).

Applies to blocks whose every transform is a standard LSTM (output form ``standard``, no
peepholes, no coupled gates), with or without biases, priority and dropout between layers,
tied or per-layer weights. The hyperplane scheduler's ``handwritten_blocker`` names what it
does not cover; the scheduler then runs the per-op steps. The two compute the same function
(tests/test_handwritten.py: against the per-op steps, the float64 reference and
`torch.autograd.gradcheck`).

Layout. A step's cells are R = groups x r rows (``groups``: the layers when weights are
per layer, else 1) of (B, d) vectors per dimension; every per-dimension tensor is
dimension-major, (D, groups, r, B, d), which is how the scheduler gathers and stores them.
A block's H is (groups, r * B, D * d), one copy per step. Transforms are grouped as the
block computes them (`GridBlock.forward`): the non-priority dimensions from one H, then each
priority dimension from H with the new hidden vectors of every dimension computed so far.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridlstm.nn.kernels.plans import Layout
from gridlstm.nn.kernels.pytorch_steps import steps_forward


def _lstm_backward(
    dh: Tensor, dm_new: Tensor, m: Tensor, sig: Tensor, g: Tensor, tanh_m: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of `gridlstm.nn.kernels.pytorch_steps.lstm`: (dz as (groups, r, B, n, 4, d)
    contiguous, dm)."""
    i, f, o = sig[:, 0], sig[:, 1], sig[:, 3]
    dm = torch.ops.aten.tanh_backward(dh * o, tanh_m).add_(dm_new)
    n, _, groups, r, batch, d = sig.shape
    # d(output)/d(activation) per gate, in z's layout, then one sigmoid' pass for all four
    # gates and a tanh' pass over the g slot.
    dz = sig.new_empty(groups, r, batch, n, 4, d)
    view = dz.permute(3, 4, 0, 1, 2, 5)
    torch.mul(dm, g, out=view[:, 0])
    torch.mul(dm, m, out=view[:, 1])
    torch.mul(dh, tanh_m, out=view[:, 3])
    dg = dm * i
    torch.ops.aten.sigmoid_backward(view, sig, grad_input=view)
    torch.ops.aten.tanh_backward(dg, g, grad_input=view[:, 2])
    return dz, dm * f


class HyperplaneSteps(torch.autograd.Function):
    """All steps of a plan: (static, weights..., biases...) -> every step's (h, m).

    ``static``: (2, rows, B, d), the h and m of every step's static rows (boundary state,
    projected input, zeros) back to back. The output, (2, rows_out, B, d), holds every
    step's output h and m back to back, step s as (D * R_s) dimension-major rows. Steps
    gather from one buffer: all outputs followed by the static rows, so a step's picks
    (`Layout.index_*`) are global rows of it and the backward routes gradients with one
    `index_add_` per part into one gradient buffer of the same layout. Weights
    (groups, D * d, n * 4d) and biases (groups, 1, n * 4d) or None, one per transform
    group, stacked and transposed as the hyperplane backend's ``LayerStack`` does.
    """

    @staticmethod
    def forward(
        ctx,
        layout: Layout,
        gemm_dtype: torch.dtype,
        dropout: float,
        static: Tensor,
        *params: Tensor | None,
    ) -> Tensor:
        keep = any(ctx.needs_input_grad)  # else (inference) nothing is kept
        with torch.autocast(static.device.type, enabled=False):
            out, saved, masks, noises = steps_forward(
                layout, gemm_dtype, dropout, static, params, keep
            )
        weights, biases = params[: len(layout.transforms)], params[len(layout.transforms) :]
        cast = gemm_dtype != static.dtype
        # Everything the backward reads goes through save_for_backward, so saved-tensor
        # hooks (activation checkpointing, offload to the CPU) see it.
        ctx.layout, ctx.steps = layout, [len(per_group) for per_group in saved]
        ctx.has_bias = [b is not None for b in biases]
        ctx.gemm_dtype, ctx.dropout = gemm_dtype, dropout
        ctx.cast, ctx.has_masks = cast, bool(masks) and keep
        activations = [t for per_group in saved for group in per_group for t in group]
        gemm_weights = [w.to(gemm_dtype) for w in weights] if cast and keep else []
        ctx.save_for_backward(
            *weights,
            *gemm_weights,
            *(masks if ctx.has_masks else ()),
            *activations,
            static,
            *biases,
            *(noises if ctx.has_masks else ()),
        )
        return out

    @staticmethod
    def _unpack(ctx) -> tuple[list, list, list, list]:
        """(weights, GEMM weights, masks, per step and group (H, m, sig, g, tanh_m))."""
        tensors = list(ctx.saved_tensors)
        count = len(ctx.layout.transforms)
        weights, tensors = tensors[:count], tensors[count:]
        gemm_weights = weights
        if ctx.cast:
            gemm_weights, tensors = tensors[:count], tensors[count:]
        masks = []
        if ctx.has_masks:
            masks, tensors = tensors[: len(ctx.steps) - 1], tensors[len(ctx.steps) - 1 :]
        saved = []
        for groups in ctx.steps:
            saved.append([tuple(tensors[5 * k : 5 * k + 5]) for k in range(groups)])
            tensors = tensors[5 * groups :]
        return weights, gemm_weights, masks, saved

    @staticmethod
    def _double_backward(ctx, grad: Tensor) -> tuple:
        """The backward as a graph (create_graph=True): the forward again in recorded
        PyTorch ops, with the forward's dropout noise, differentiated."""
        from gridlstm.nn.kernels.recompute import differentiable_backward

        tensors = list(ctx.saved_tensors)
        count = len(ctx.layout.transforms)
        noise_count = len(ctx.steps) - 1 if ctx.has_masks else 0
        tail = tensors[len(tensors) - 1 - count - noise_count :]
        weights, static = tensors[:count], tail[0]
        biases, noises = tail[1 : 1 + count], tail[1 + count :]
        layout, gemm_dtype, dropout = ctx.layout, ctx.gemm_dtype, ctx.dropout

        def again(static: Tensor, *params: Tensor | None) -> tuple[Tensor]:
            with torch.autocast(static.device.type, enabled=False):
                out = steps_forward(layout, gemm_dtype, dropout, static, params, False, noises)
            return (out[0],)

        grads = differentiable_backward(
            again, (static, *weights, *biases), tuple(ctx.needs_input_grad[3:]), (grad,)
        )
        return (None, None, None, *grads)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            return HyperplaneSteps._double_backward(ctx, grad)
        return HyperplaneSteps._backward(ctx, grad)

    @staticmethod
    def _backward(ctx, grad: Tensor) -> tuple:
        layout = ctx.layout
        params, weights, masks, saved = HyperplaneSteps._unpack(ctx)
        D, G = layout.dims, layout.groups
        batch, d = grad.shape[2], grad.shape[3]
        dweights = [torch.zeros_like(w, dtype=grad.dtype) for w in params]
        dbiases = [
            grad.new_zeros(w.shape[0], 1, w.shape[2]) if has else None
            for w, has in zip(weights, ctx.has_bias, strict=True)
        ]
        total = layout.starts[-1]
        # Gradients of the gather buffer: the outputs' own, plus what later steps route back.
        dbuffer = grad.new_zeros(2, total + layout.static_rows, batch, d)
        dbuffer[:, :total] = grad
        for s in reversed(range(len(layout.slots))):
            R = layout.slots[s]
            r, at = R // G, slice(layout.starts[s], layout.starts[s + 1])
            # Becomes the gradient of the h gathered (a copy: index_add_ refuses a source
            # inside its destination, though the rows it adds to are other steps').
            dh = dbuffer[0, at].view(D, G, r, batch, d).clone()
            dm_out = dbuffer[1, at].view(D, G, r, batch, d)
            dm_in = dh.new_empty(D, G, r, batch, d)
            for number in reversed(range(len(layout.transforms))):
                group = layout.transforms[number]
                H, m, sig, g, tanh_m = saved[s][number]
                dz, dm = _lstm_backward(dh[group.index], dm_out[group.index], m, sig, g, tanh_m)
                dm_in[group.index] = dm
                dz = dz.view(G, r * batch, -1)
                if dbiases[number] is not None:
                    dbiases[number] += dz.sum(1, keepdim=True)
                if H.dtype != dz.dtype:  # autocast: the GEMMs in its dtype
                    dz = dz.to(H.dtype)
                    dweights[number] += torch.bmm(H.transpose(1, 2), dz)
                else:
                    dweights[number].baddbmm_(H.transpose(1, 2), dz)
                w = weights[number]  # in the GEMMs' dtype: autocast's, or the input's
                dH = torch.bmm(dz.to(w.dtype), w.transpose(1, 2)).to(dh.dtype)
                # This group's new h replaced the gathered one, which reaches the output
                # only through H from here on.
                dh[group.index] = 0.0
                dh += dH.view(G, r, batch, D, d).permute(3, 0, 1, 2, 4)
            if masks and s > 0:
                dh[D - 1] *= masks[s - 1]
            # Gathers read only earlier steps' outputs and static rows: done before they are.
            dbuffer[0].index_add_(0, layout.index_h[s], dh.reshape(D * R, batch, d))
            dbuffer[1].index_add_(0, layout.index_m[s], dm_in.reshape(D * R, batch, d))
        dweights = [dw.to(w.dtype) for dw, w in zip(dweights, params, strict=True)]
        return (None, None, None, dbuffer[:, total:], *dweights, *dbiases)


def gemm_dtype(static: Tensor) -> torch.dtype:
    """The dtype the hyperplane steps' GEMMs run in: autocast's (never for float64, which
    autocast leaves alone, as on the per-op steps), else the state's."""
    device = static.device.type
    if torch.is_autocast_enabled(device) and static.dtype != torch.float64:
        return torch.get_autocast_dtype(device)
    return static.dtype


def run(
    layout: Layout, static: Tensor, params: list, picks: tuple[Tensor, Tensor], dropout: float = 0.0
) -> Tensor:
    """`HyperplaneSteps` applied, returning the output rows ``picks`` = (rows of h, rows of m)
    back to back, (len(picks[0]) + len(picks[1]), B, d). Under autocast the GEMMs run in its
    dtype and the LSTM arithmetic, the state and the outputs stay in the input's floating type
    (more precise than the per-op steps, whose gates autocast leaves in the GEMMs' dtype).
    Which steps run (these, the native or the fused ones) is `gridlstm.nn.kernels.ops`'s
    choice."""
    out = HyperplaneSteps.apply(layout, gemm_dtype(static), dropout, static, *params)
    return torch.cat([out[0].index_select(0, picks[0]), out[1].index_select(0, picks[1])])

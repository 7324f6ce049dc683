"""The hyperplane scheduler's steps as one autograd Function with a hand-written backward.

The forward runs without autograd and keeps, per step and group, only what the backward
needs; the backward walks the steps in reverse with a few large ops each (one GEMM for the
input gradient, one accumulating GEMM for the weight gradient, the LSTM arithmetic's
derivative written out, one `index_add_` per part to route the gradients back to the rows
they were gathered from). On a 2-core CPU it measured 1.1-1.2x faster than the per-op steps
(`gridlstm.nn.backends.hyperplane.step` under autograd): both are bound by their GEMMs and by passes
of the gate arithmetic over memory (docs/benchmarks.md).

Applies to blocks whose every transform is a standard LSTM (output form ``standard``, no
peepholes, no coupled gates), with or without biases, priority and dropout between layers,
tied or per-layer weights. `gridlstm.nn.backends.hyperplane.handwritten_blocker` names what it does
not cover; the scheduler then runs the per-op steps. The two compute the same function
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

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gridlstm.nn.backends import native
from gridlstm.nn.gates import lstm_reference

if TYPE_CHECKING:
    from gridlstm.nn.backends.hyperplane.per_op import LayerStack
    from gridlstm.nn.backends.hyperplane.plans import Plan


@dataclass(frozen=True)
class Group:
    """Dimensions a block computes from one H, as a slice when contiguous (cheap views)."""

    dims: tuple[int, ...]

    @property
    def index(self) -> slice | list[int]:
        first, last = self.dims[0], self.dims[-1]
        if list(self.dims) == list(range(first, last + 1)):
            return slice(first, last + 1)
        return list(self.dims)


@dataclass(frozen=True)
class Layout:
    """What the Function needs of a plan besides the tensors
    (`gridlstm.nn.backends.hyperplane.Plan`)."""

    dims: int  # D: grid dimensions + depth
    groups: int  # row groups with their own weights (layers if per-layer, else 1)
    slots: tuple[int, ...]  # R per step
    starts: tuple[int, ...]  # first output row of each step, then the total
    static_rows: int
    index_h: tuple[Tensor, ...]  # per step: dimension-major picks of [all outputs; static]
    index_m: tuple[Tensor, ...]
    transforms: tuple[Group, ...]


def _tanh(x: Tensor) -> Tensor:
    """tanh(x), on a CPU in float32/64 as 2 sigmoid(2x) - 1: there torch's vectorised tanh
    measured 8x slower than its sigmoid (65 against 8 us on 57k floats), and this form costs
    two cheap passes. Not in 16-bit types, where near 0 it would keep only the absolute
    precision of numbers near 1."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:  # recorded (double backward): no in-place
        return torch.sigmoid(x * 2.0) * 2.0 - 1.0
    return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


def _lstm(z: Tensor, m: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Standard LSTM arithmetic on z (groups, r * B, n * 4d) viewed per dimension and gate as
    (n, 4, groups, r, B, d); m (n, groups, r, B, d). Returns h', m' and what backward needs."""
    groups, r, batch, n, d = shape
    gates = z.view(groups, r, batch, n, 4, d).permute(3, 4, 0, 1, 2, 5)
    sig = torch.sigmoid(gates)  # i, f, o used; the g slot is unused
    g = _tanh(gates[:, 2])
    m_new = torch.addcmul(sig[:, 1] * m, sig[:, 0], g)
    tanh_m = _tanh(m_new)
    return sig[:, 3] * tanh_m, m_new, sig, g, tanh_m


def _lstm_backward(
    dh: Tensor, dm_new: Tensor, m: Tensor, sig: Tensor, g: Tensor, tanh_m: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of `_lstm`: (dz as (groups, r, B, n, 4, d) contiguous, dm)."""
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


def _depth_mask(layout: Layout, s: int, noise: Tensor) -> Tensor:
    """Step ``s``'s dropout factors on its gathered depth h, (groups, r, B, d): ``noise``
    (R_{s-1}, B, d) at the rows gathered from step s - 1's depth outputs, 1 where the depth
    input is the network's input (layer 0, a static row)."""
    D, G, R = layout.dims, layout.groups, layout.slots[s]
    picks = layout.index_h[s][(D - 1) * R :]
    first = layout.starts[s - 1] + (D - 1) * layout.slots[s - 1]  # step s-1's depth h rows
    from_previous = picks < layout.starts[-1]
    rows = torch.where(from_previous, picks - first, 0)
    mask = torch.where(from_previous[:, None, None], noise.index_select(0, rows), 1.0)
    return mask.view(G, R // G, *noise.shape[1:])


def steps_forward(
    layout: Layout,
    gemm_dtype: torch.dtype,
    dropout: float,
    static: Tensor,
    params: tuple,
    keep: bool,
    noises: list[Tensor] | None = None,
    forms: tuple[str, ...] | None = None,
) -> tuple[Tensor, list, list, list]:
    """Every step of a plan in PyTorch: (outputs (2, rows_out, B, d), per step and group
    what the hand-written backward reads (if ``keep``), dropout masks (if ``keep``), the
    dropout noise per step). ``noises`` given (one per step but the last): that noise
    instead of new draws. ``forms`` given (an output form per transform group): the gate
    arithmetic of `gridlstm.nn.gates` in those forms instead of the hand-written one (the
    double backward's reference, also for the fused step's paper form). Under autograd it is
    an ordinary recorded computation."""
    D, G = layout.dims, layout.groups
    batch, d = static.shape[2], static.shape[3]
    weights, biases = params[: len(layout.transforms)], params[len(layout.transforms) :]
    cast = gemm_dtype != static.dtype  # autocast: GEMMs in its dtype, the rest not
    gemm_weights = [w.to(gemm_dtype) for w in weights]
    total = layout.starts[-1]
    buffer = static.new_empty(2, total + static.shape[1], batch, d)
    buffer[:, total:] = static
    saved, masks, drawn, noise = [], [], [], None
    for s, R in enumerate(layout.slots):
        r, at = R // G, slice(layout.starts[s], layout.starts[s + 1])
        h_in = buffer[0].index_select(0, layout.index_h[s]).view(D, G, r, batch, d)
        m_in = buffer[1].index_select(0, layout.index_m[s]).view(D, G, r, batch, d)
        if noise is not None:  # dropout on the depth h that layers pass up
            mask = _depth_mask(layout, s, noise)
            h_in[D - 1] *= mask
            masks.append(mask if keep else None)
        h_out, m_out = (
            buffer[0, at].view(D, G, r, batch, d),
            buffer[1, at].view(D, G, r, batch, d),
        )
        H = h_in.permute(1, 2, 3, 0, 4).reshape(G, r * batch, D * d)
        per_group = []
        for number, group in enumerate(layout.transforms):
            w, b = gemm_weights[number], biases[number]
            H_gemm = H.to(gemm_dtype)
            if cast:
                z = torch.bmm(H_gemm, w).to(static.dtype)
                z = z if b is None else z + b
            else:
                z = torch.bmm(H, w) if b is None else torch.baddbmm(b, H, w)
            m = m_in[group.index]
            n = len(group.dims)
            if forms is None:
                h_new, m_new, sig, g, tanh_m = _lstm(z, m, (G, r, batch, n, d))
            else:
                gates = z.view(G, r, batch, n, 4 * d).permute(3, 0, 1, 2, 4)
                h_new, m_new = lstm_reference(gates, m, (None,) * 3, False, forms[number])
            h_out[group.index] = h_new
            m_out[group.index] = m_new
            if keep and forms is None:
                per_group.append((H_gemm, m, sig, g, tanh_m))
            if number + 1 < len(layout.transforms):  # later groups read the new h
                H = H.view(G, r, batch, D, d).clone()
                H[:, :, :, group.index] = h_new.permute(1, 2, 3, 0, 4)
                H = H.view(G, r * batch, D * d)
        saved.append(per_group)
        if dropout > 0 and s + 1 < len(layout.slots):
            if noises:
                noise = noises[s]
            else:
                # Drawn as nn.Dropout draws for the per-op steps' outputs of this step (same
                # shape and order), so on a CPU both paths drop the same units for a seed.
                noise = static.new_empty(R, batch, d).bernoulli_(1 - dropout).div_(1 - dropout)
            drawn.append(noise)
    return buffer[:, :total], saved, masks, drawn


class HyperplaneSteps(torch.autograd.Function):
    """All steps of a plan: (static, weights..., biases...) -> every step's (h, m).

    ``static``: (2, rows, B, d), the h and m of every step's static rows (boundary state,
    projected input, zeros) back to back. The output, (2, rows_out, B, d), holds every
    step's output h and m back to back, step s as (D * R_s) dimension-major rows. Steps
    gather from one buffer: all outputs followed by the static rows, so a step's picks
    (`Layout.index_*`) are global rows of it and the backward routes gradients with one
    `index_add_` per part into one gradient buffer of the same layout. Weights
    (groups, D * d, n * 4d) and biases (groups, 1, n * 4d) or None, one per transform
    group, stacked and transposed as `gridlstm.nn.backends.hyperplane.LayerStack` does.
    """

    @staticmethod
    def forward(  # noqa: D102
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
        from gridlstm.nn.backends.recompute import differentiable_backward

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
    def backward(ctx, grad: Tensor) -> tuple:  # noqa: D102
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
                dH = torch.bmm(dz, weights[number].transpose(1, 2))
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


def run(
    layout: Layout, static: Tensor, params: list, picks: tuple[Tensor, Tensor], dropout: float = 0.0
) -> Tensor:
    """`HyperplaneSteps` applied, returning the output rows ``picks`` = (rows of h, rows of m)
    back to back, (len(picks[0]) + len(picks[1]), B, d). Under autocast the GEMMs run in its
    dtype and the LSTM arithmetic, the state and the outputs stay in the input's floating type
    (more precise than the per-op steps, whose gates autocast leaves in the GEMMs' dtype).
    Without autocast, on a CPU, the native loop runs instead (`gridlstm.nn.backends.native`;
    same function)."""
    device = static.device.type
    gemm_dtype = static.dtype
    # Autocast casts float32 and 16-bit inputs of its GEMMs, never float64 ones: a float64
    # network under autocast keeps float64, as on the per-op steps.
    if torch.is_autocast_enabled(device) and static.dtype != torch.float64:
        gemm_dtype = torch.get_autocast_dtype(device)
    if gemm_dtype == static.dtype and native.applies(static, "hyperplane step"):
        from gridlstm.nn.backends.native import functions  # needs the built library

        return functions.hyperplane_steps(layout, static, params, dropout, picks)
    out = HyperplaneSteps.apply(layout, gemm_dtype, dropout, static, *params)
    return torch.cat([out[0].index_select(0, picks[0]), out[1].index_select(0, picks[1])])


def layout(plan: Plan, stack: LayerStack) -> Layout:
    """The plan as `handwritten` reads it (built once per plan; the groups are the
    network's, which does not change)."""
    if plan.layout is None:
        steps = plan.steps
        D = len(steps[0].index["h"]) // steps[0].slots
        starts = [0]
        for step in steps:
            starts.append(starts[-1] + D * step.slots)
        static_at = [starts[-1]]
        for step in steps:
            static_at.append(static_at[-1] + len(step.static["h"]))
        index: dict[str, list[Tensor]] = {"h": [], "m": []}
        for number, step in enumerate(steps):
            previous = D * steps[number - 1].slots if number else 0
            for part, picks in step.index.items():  # rows of [previous outputs; static rows]
                shift = torch.where(
                    picks < previous, starts[max(number - 1, 0)], static_at[number] - previous
                )
                index[part].append(picks + shift)
        plan.layout = check_layout(Layout(
            dims=D,
            groups=stack.layers,
            slots=tuple(step.slots for step in steps),
            starts=tuple(starts),
            static_rows=static_at[-1] - starts[-1],
            index_h=tuple(index["h"]),
            index_m=tuple(index["m"]),
            transforms=tuple(Group(dims) for dims in stack.groups),
        ))  # fmt: skip
    return plan.layout


def check_layout(layout: Layout) -> Layout:
    """Every step's gather indices in range and of the right count, checked once per layout:
    the native loop reads rows at these indices without bounds checks."""
    rows = layout.starts[-1] + layout.static_rows
    if len(layout.starts) != len(layout.slots) + 1:
        raise ValueError("hyperplane layout: starts must hold one entry per step, then the total")
    for s, R in enumerate(layout.slots):
        for part, index in (("h", layout.index_h[s]), ("m", layout.index_m[s])):
            if index.dtype != torch.int64 or index.numel() != layout.dims * R:
                raise ValueError(
                    f"hyperplane layout: step {s}'s {part} indices must be {layout.dims * R} "
                    f"int64 rows, got {index.numel()} {index.dtype}"
                )
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= rows):
                raise ValueError(
                    f"hyperplane layout: step {s}'s {part} indices leave the buffer's {rows} rows"
                )
    return layout

"""The hyperplane steps' forward in PyTorch: the handwritten steps' forward
(`gridlstm.nn.kernels.handwritten`) and, recorded under autograd with the reference gate
arithmetic, the recomputation a double backward differentiates (`gridlstm.nn.kernels.recompute`).
Its own module because both import it and recompute is imported by the handwritten steps.

Why the hyperplane step is written in PyTorch twice, here and as the per-op step
(`gridlstm.nn.backends.hyperplane.per_op`): the per-op step goes through the block's modules,
so it covers every option (peepholes, coupled gates, non-LSTM dimensions) and autograd
records it; this one works on the plan's stacked weights in one layout and keeps the gate
activations the handwritten backward reads, which the modules do not expose. The equivalence
tests hold the two to one function."""

from __future__ import annotations

import torch
from torch import Tensor

from gridlstm.nn.kernels.gates import lstm_reference
from gridlstm.nn.kernels.plans import Layout, depth_mask


def tanh(x: Tensor) -> Tensor:
    """tanh(x), on a CPU in float32/64 as 2 sigmoid(2x) - 1: there torch's vectorised tanh
    measured 8x slower than its sigmoid (65 against 8 us on 57k floats), and this form costs
    two cheap passes. Not in 16-bit types, where near 0 it would keep only the absolute
    precision of numbers near 1."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:  # recorded (double backward): no in-place
        return torch.sigmoid(x * 2.0) * 2.0 - 1.0
    return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


def lstm(z: Tensor, m: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Standard LSTM arithmetic on z (groups, r * B, n * 4d) viewed per dimension and gate as
    (n, 4, groups, r, B, d); m (n, groups, r, B, d). Returns h', m' and what backward needs."""
    groups, r, batch, n, d = shape
    gates = z.view(groups, r, batch, n, 4, d).permute(3, 4, 0, 1, 2, 5)
    sig = torch.sigmoid(gates)  # i, f, o used; the g slot is unused
    g = tanh(gates[:, 2])
    m_new = torch.addcmul(sig[:, 1] * m, sig[:, 0], g)
    tanh_m = tanh(m_new)
    return sig[:, 3] * tanh_m, m_new, sig, g, tanh_m


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
    what the handwritten backward reads (if ``keep``), dropout masks (if ``keep``), the
    dropout noise per step). ``noises`` given (one per step but the last): that noise
    instead of new draws. ``forms`` given (an output form per transform group): the gate
    arithmetic of `gridlstm.nn.kernels.gates` in those forms instead of the handwritten one (the
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
            mask = depth_mask(layout, s, noise)
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
                z = torch.bmm(H, w) if b is None else torch.baddbmm(b.to(H.dtype), H, w)
            m = m_in[group.index]
            n = len(group.dims)
            if forms is None:
                h_new, m_new, sig, g, tanh_m = lstm(z, m, (G, r, batch, n, d))
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

"""Triton source of the fused hyperplane step (`gridlstm.nn.kernels.fused`).

Two kernels per transform group and step, no other launch in the forward:

* `step_forward`: gathers each cell's incoming hidden vectors (one row index per cell and
  dimension) straight from the step buffer into the GEMM tile, multiplies by the group's
  weights (``tl.dot``, all four gates of a unit block at once), adds the bias and runs the
  LSTM arithmetic (standard ``h = o tanh(m')`` or paper ``h = tanh(o m')``) in the epilogue,
  writing h' and m' into the buffer rows of this step. It also keeps the pre-activations and
  the gathered H for the backward, so nothing is recomputed or gathered twice.
* `step_backward`: the gate derivatives from the kept pre-activations (the gates are
  recomputed, cheaper than storing them), giving dz and the memory gradient that flows on.

The GEMMs of the backward (dH = dz W^T per step, dW = H^T dz once over all steps) are cuBLAS
calls in `gridlstm.nn.kernels.fused.steps`.

Kernels are plain functions here and compiled by `build` at first use: ``interpret=True``
wraps them in Triton's interpreter, which runs them on CPU tensors (how the tests check them
on a machine without a GPU; `triton.jit` decides between the two when it decorates, so the
choice cannot be a module-level decorator). The interpreter has no libdevice, so tanh is
written through the sigmoid: tanh(x) = 2 sigmoid(2x) - 1. Its ``tl.dot`` of bfloat16 tiles
returns garbage, and so does its product of two bfloat16 tensors (Triton 3.8's interpreter;
float16 and float32 are right): the dropout factor multiplies in float32, and there
(``UPCAST``) the GEMM tiles are cast to float32 first: a product of two bfloat16 numbers is
exact in float32, so this is the function the GPU's bfloat16 dot computes (float32
accumulation), up to the order of the sums.
"""

from __future__ import annotations

from types import SimpleNamespace

import triton
import triton.language as tl


def step_forward(
    buf_h,
    buf_m,  # the step buffer's h and m planes: rows of (B, d)
    src_h,
    idx_m,  # int64 (D * R): buffer row of every cell's incoming h (per dim), its m
    dims,  # int64 (n): the buffer dimension of each of the group's n transforms
    w,
    bias,  # (G, D * d, n * 4d) and (G, 1, n * 4d) (bias unused without HAS_BIAS)
    z_in,  # (M, n * 4d): pre-activations added per row (the scan's input half; HAS_ZIN)
    drop,  # (G * M, d): dropout factors of the gathered depth h (HAS_DROP)
    z_save,
    h_save,  # (G, M_all, n * 4d) and (G, M_all, D * d), offset to this step
    out_start,
    M,
    B,
    d,
    R,
    r,
    KD,
    N4,
    stride_zg,
    stride_hg,
    depth,
    HAS_BIAS: tl.constexpr,
    HAS_ZIN: tl.constexpr,
    HAS_DROP: tl.constexpr,
    PAPER: tl.constexpr,
    SAVE: tl.constexpr,
    SAVE_H: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """One program: BLOCK_M cell rows (slot x batch) of one group (layer) times BLOCK_D units
    of one transform, all four gates. ``SAVE``: keep the pre-activations; ``SAVE_H``: the
    gathered H too (where the caller does not hold it already)."""
    tiles_m = (M + BLOCK_M - 1) // BLOCK_M
    tiles_d = (d + BLOCK_D - 1) // BLOCK_D
    group = tl.program_id(0) // tiles_m
    rows = (tl.program_id(0) % tiles_m) * BLOCK_M + tl.arange(0, BLOCK_M)
    e = tl.program_id(1) // tiles_d
    units = (tl.program_id(1) % tiles_d) * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = rows < M
    unit_ok = units < d
    slot = group * r + rows // B  # the cell's slot among the step's R
    batch = rows % B
    row_stride = B * d

    acc_i = tl.full((BLOCK_M, BLOCK_D), 0.0, tl.float32)
    acc_f = tl.full((BLOCK_M, BLOCK_D), 0.0, tl.float32)
    acc_g = tl.full((BLOCK_M, BLOCK_D), 0.0, tl.float32)
    acc_o = tl.full((BLOCK_M, BLOCK_D), 0.0, tl.float32)
    w_group = w + group.to(tl.int64) * KD * N4 + e * 4 * d
    for k0 in range(0, KD, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < KD
        both = row_ok[:, None] & k_ok[None, :]
        source = tl.load(src_h + (ks // d)[None, :] * R + slot[:, None], mask=both, other=0)
        x = tl.load(
            buf_h + source * row_stride + batch[:, None] * d + (ks % d)[None, :],
            mask=both,
            other=0.0,
        )
        if HAS_DROP:  # dropout on the depth h that layers pass up (dimension ``depth``)
            in_depth = both & ((ks // d) == depth)[None, :]
            drop_at = drop + (group * M + rows).to(tl.int64)[:, None] * d + (ks % d)[None, :]
            factor = tl.load(drop_at, mask=in_depth, other=1.0).to(tl.float32)
            x = (x.to(tl.float32) * factor).to(x.dtype)  # rounded once, as torch's product
        if SAVE_H:  # the gathered H, once (by the programs of the first unit block)
            h_at = h_save + group.to(tl.int64) * stride_hg + rows[:, None] * KD + ks[None, :]
            tl.store(h_at, x, mask=both & (tl.program_id(1) == 0))
        w_at = w_group + ks[:, None] * N4 + units[None, :]
        w_ok = k_ok[:, None] & unit_ok[None, :]
        w_i = tl.load(w_at, mask=w_ok, other=0.0)
        w_f = tl.load(w_at + d, mask=w_ok, other=0.0)
        w_g = tl.load(w_at + 2 * d, mask=w_ok, other=0.0)
        w_o = tl.load(w_at + 3 * d, mask=w_ok, other=0.0)
        if UPCAST:  # see the module's docstring: the same products, exact in float32
            x = x.to(tl.float32)
            w_i, w_f, w_g, w_o = (
                w_i.to(tl.float32),
                w_f.to(tl.float32),
                w_g.to(tl.float32),
                w_o.to(tl.float32),
            )
        acc_i += tl.dot(x, w_i, input_precision=PRECISION)
        acc_f += tl.dot(x, w_f, input_precision=PRECISION)
        acc_g += tl.dot(x, w_g, input_precision=PRECISION)
        acc_o += tl.dot(x, w_o, input_precision=PRECISION)
    if HAS_BIAS:
        b_at = bias + group.to(tl.int64) * N4 + e * 4 * d + units
        acc_i += tl.load(b_at, mask=unit_ok, other=0.0).to(tl.float32)[None, :]
        acc_f += tl.load(b_at + d, mask=unit_ok, other=0.0).to(tl.float32)[None, :]
        acc_g += tl.load(b_at + 2 * d, mask=unit_ok, other=0.0).to(tl.float32)[None, :]
        acc_o += tl.load(b_at + 3 * d, mask=unit_ok, other=0.0).to(tl.float32)[None, :]

    tile_ok = row_ok[:, None] & unit_ok[None, :]
    if HAS_ZIN:
        zin_at = z_in + rows.to(tl.int64)[:, None] * N4 + e * 4 * d + units[None, :]
        acc_i += tl.load(zin_at, mask=tile_ok, other=0.0).to(tl.float32)
        acc_f += tl.load(zin_at + d, mask=tile_ok, other=0.0).to(tl.float32)
        acc_g += tl.load(zin_at + 2 * d, mask=tile_ok, other=0.0).to(tl.float32)
        acc_o += tl.load(zin_at + 3 * d, mask=tile_ok, other=0.0).to(tl.float32)
    dim = tl.load(dims + e)
    m_row = tl.load(idx_m + dim * R + slot, mask=row_ok, other=0)
    cell = batch[:, None] * d + units[None, :]
    m = tl.load(buf_m + m_row[:, None] * row_stride + cell, mask=tile_ok, other=0.0)
    i = 1.0 / (1.0 + tl.exp(-acc_i))
    f = 1.0 / (1.0 + tl.exp(-acc_f))
    g = 2.0 / (1.0 + tl.exp(-2.0 * acc_g)) - 1.0
    o = 1.0 / (1.0 + tl.exp(-acc_o))
    m_new = f * m.to(tl.float32) + i * g
    if PAPER:
        h_new = 2.0 / (1.0 + tl.exp(-2.0 * (o * m_new))) - 1.0
    else:
        h_new = o * (2.0 / (1.0 + tl.exp(-2.0 * m_new)) - 1.0)
    out_row = out_start + dim * R + slot
    out_at = out_row[:, None] * row_stride + cell
    tl.store(buf_h + out_at, h_new.to(buf_h.dtype.element_ty), mask=tile_ok)
    tl.store(buf_m + out_at, m_new.to(buf_m.dtype.element_ty), mask=tile_ok)
    if SAVE:
        z_at = z_save + group.to(tl.int64) * stride_zg + rows[:, None] * N4 + e * 4 * d
        z_at += units[None, :]
        kind = z_save.dtype.element_ty
        tl.store(z_at, acc_i.to(kind), mask=tile_ok)
        tl.store(z_at + d, acc_f.to(kind), mask=tile_ok)
        tl.store(z_at + 2 * d, acc_g.to(kind), mask=tile_ok)
        tl.store(z_at + 3 * d, acc_o.to(kind), mask=tile_ok)


def step_backward(
    z,
    buf_m,
    idx_m,
    dims,  # kept pre-activations (G, M, n * 4d); buffer m plane; as forward
    dh,
    dm_out,  # (D, G, M, d): gradients of the step's h' and m' (all dimensions)
    dz,
    dm_in,  # out: (G, M, n * 4d) and (D, G, M, d) (this group's dimensions written)
    GM,
    M,
    B,
    d,
    R,
    r,
    N4,
    PAPER: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program: BLOCK_M rows (over all groups) times BLOCK_D units of one transform."""
    tiles_d = (d + BLOCK_D - 1) // BLOCK_D
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # over groups x M
    e = tl.program_id(1) // tiles_d
    units = (tl.program_id(1) % tiles_d) * BLOCK_D + tl.arange(0, BLOCK_D)
    ok = (rows < GM)[:, None] & (units < d)[None, :]
    group = rows // M
    slot = group * r + (rows % M) // B
    batch = rows % B
    dim = tl.load(dims + e)

    z_at = rows.to(tl.int64)[:, None] * N4 + e * 4 * d + units[None, :]
    i = 1.0 / (1.0 + tl.exp(-tl.load(z + z_at, mask=ok, other=0.0).to(tl.float32)))
    f = 1.0 / (1.0 + tl.exp(-tl.load(z + z_at + d, mask=ok, other=0.0).to(tl.float32)))
    g = 2.0 / (1.0 + tl.exp(-2.0 * tl.load(z + z_at + 2 * d, mask=ok, other=0.0).to(tl.float32)))
    g = g - 1.0
    o = 1.0 / (1.0 + tl.exp(-tl.load(z + z_at + 3 * d, mask=ok, other=0.0).to(tl.float32)))
    m_row = tl.load(idx_m + dim * R + slot, mask=rows < GM, other=0)
    m_at = m_row[:, None] * (B * d) + batch[:, None] * d + units[None, :]
    m = tl.load(buf_m + m_at, mask=ok, other=0.0).to(tl.float32)
    m_new = f * m + i * g
    grad_at = (dim * GM + rows.to(tl.int64))[:, None] * d + units[None, :]
    grad_h = tl.load(dh + grad_at, mask=ok, other=0.0).to(tl.float32)
    grad_m = tl.load(dm_out + grad_at, mask=ok, other=0.0).to(tl.float32)
    if PAPER:
        t = 2.0 / (1.0 + tl.exp(-2.0 * (o * m_new))) - 1.0
        da = grad_h * (1.0 - t * t)
        do = da * m_new
        grad_m += da * o
    else:
        t = 2.0 / (1.0 + tl.exp(-2.0 * m_new)) - 1.0
        do = grad_h * t
        grad_m += grad_h * o * (1.0 - t * t)
    kind = dz.dtype.element_ty
    tl.store(dz + z_at, (grad_m * g * i * (1.0 - i)).to(kind), mask=ok)
    tl.store(dz + z_at + d, (grad_m * m * f * (1.0 - f)).to(kind), mask=ok)
    tl.store(dz + z_at + 2 * d, (grad_m * i * (1.0 - g * g)).to(kind), mask=ok)
    tl.store(dz + z_at + 3 * d, (do * o * (1.0 - o)).to(kind), mask=ok)
    tl.store(dm_in + grad_at, (grad_m * f).to(dm_in.dtype.element_ty), mask=ok)


_BUILT: dict[bool, SimpleNamespace] = {}


def build(interpret: bool = False) -> SimpleNamespace:
    """The kernels compiled for the GPU (``interpret=False``) or wrapped in Triton's CPU
    interpreter; built once per mode."""
    if interpret not in _BUILT:
        if interpret:
            from triton.runtime.interpreter import InterpretedFunction as wrap
        else:
            wrap = triton.JITFunction
        _BUILT[interpret] = SimpleNamespace(
            step_forward=wrap(step_forward), step_backward=wrap(step_backward)
        )
    return _BUILT[interpret]

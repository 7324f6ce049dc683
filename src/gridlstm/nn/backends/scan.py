"""The layer-by-layer time scan for 2-LSTMs (backend ``scan``; docs/backends.md section 3).

The fast path hands each layer's time recurrence to `torch.nn.LSTM`'s kernel, which only
computes the standard LSTM. This backend keeps the same factorisation, one layer at a time,
but runs the recurrence itself, so it computes every block the kernel cannot: the paper's
output form h' = tanh(o * m'), peepholes, coupled gates, non-LSTM dimensions and time
priority. Per layer:

* the input half of every transform that reads the layer's incoming depth vector is one
  GEMM for all time steps at once (the recurrence only adds the h_{t-1} half);
* the recurrence is one GEMM and one pass of the gate arithmetic per time step
  (`gridlstm.nn.block.lstm_pointwise`, shared with every other backend). With time priority
  the depth transform must run inside the loop too, since it reads h_{t-1}: three GEMMs per
  step (the h_{t-1} halves of both transforms, then the time transform's half that reads
  the new depth vector; stacking the first two into one GEMM measured no faster);
* a depth transform that reads the time vectors (depth or no priority) runs after the loop
  for all positions at once.

So a forward is L * T small sequential steps of a few ops each, against sum(sizes) + L - 1
larger but far busier steps for the general hyperplane scheduler. On a CPU, where the
transforms in the loop are LSTMs without peepholes or coupled gates, the loop runs in C++
(`gridlstm.nn.kernels.native`), on a GPU in Triton (`gridlstm.nn.kernels.fused`), as
`gridlstm.nn.kernels.ops.scan` chooses; the per-op loop (`gridlstm.nn.kernels.time_loop`,
which their double backward recomputes too) is their reference and fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from gridlstm.nn.backends import compiled
from gridlstm.nn.backends.base import Call, Network, Pair
from gridlstm.nn.block import GridBlock, LSTMTransform
from gridlstm.nn.kernels import ops
from gridlstm.nn.kernels.time_loop import STEPS


def blocker(net: Network) -> str | None:
    """Why the per-layer time scan does not apply to a network (None if it does)."""
    if net.grid_dims != 1:
        return "the scan runs the 2-LSTM (exactly one grid dimension)"
    if net.input_dims != [net.depth]:
        return "input projected onto a grid dimension"
    return None


def slower(net: Network) -> str | None:
    """Why ``auto`` passes the scan over where it applies (None: it does not): with time
    priority the scan runs both transforms inside its loop, which measured slower than the
    hyperplane scheduler for tied networks (one GEMM for all layers per hyperplane there)
    and faster for untied ones (docs/benchmarks.md)."""
    if net.grid_dims == 1 and 0 in net.priority and net.tied:
        return "tied time priority (slower than hyperplane there)"
    return None


def weights(transform: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(weight, bias) of an LSTM or non-LSTM transform (weight: gates x [h_time; h_depth])."""
    if isinstance(transform, LSTMTransform):
        return transform.weight, transform.bias
    return transform.linear.weight, transform.linear.bias


def stage(block: GridBlock, dim: int) -> int:
    """When a block computes ``dim``: 0 with the non-priority dimensions, else 1 + its
    place in the priority list (`GridBlock.forward`)."""
    return 1 + block.priority.index(dim) if dim in block.priority else 0


def plain_lstm(transform: nn.Module) -> bool:
    """Whether the native time loops cover a transform: an LSTM without peepholes or
    coupled gates, either output form."""
    return (
        isinstance(transform, LSTMTransform)
        and all(p is None for p in transform.peepholes())
        and not transform.coupled
    )


def native_options(block: GridBlock) -> str | None:
    """What of a block the native time loops do not cover (None: all of it): a transform
    with peepholes or coupled gates (the depth one too under time priority)."""
    time, depth = block.transforms[0], block.transforms[1]
    priority = stage(block, 1) < stage(block, 0)
    if not plain_lstm(time) or (priority and not plain_lstm(depth)):
        return "peepholes or coupled gates"
    return None


def fused_options(block: GridBlock, real: Tensor | None) -> str | None:
    """What the fused recurrence does not cover (None: all of it): sequence lengths, time
    priority, peepholes or coupled gates."""
    if real is not None:
        return "sequence lengths"
    if stage(block, 1) < stage(block, 0):
        return "time priority"
    if not plain_lstm(block.transforms[0]):
        return "peepholes or coupled gates"
    return None


def depth_after_loop(
    block: GridBlock, h_time: Tensor, h0: Tensor, h_depth: Tensor, m_depth: Tensor
) -> Pair:
    """The depth transform at every position at once (depth or no priority), from the time
    vector it reads: the new one (depth priority) or the previous one (none)."""
    reads_new = stage(block, 1) > stage(block, 0)
    h_read = h_time if reads_new else torch.cat([h0[None], h_time[:-1]])
    w_depth, b_depth = weights(block.transforms[1])
    z = nn.functional.linear(torch.cat([h_read, h_depth], -1), w_depth, b_depth)
    return block.transforms[1].finish(z, m_depth)


def layer(
    block: GridBlock,
    h_depth: Tensor,
    m_depth: Tensor,
    h0: Tensor,
    c0: Tensor,
    valid: Tensor | None,
    steps: Mapping[str, Callable] = STEPS,
) -> tuple[Tensor, Tensor, Tensor, Pair]:
    """One layer over all time steps, time-major. h_depth, m_depth: (T, B, d) from below;
    h0, c0: (B, d); ``valid``: (T, B, 1) or None; ``steps``: `STEPS` or compiled versions.
    The recurrence runs where `gridlstm.nn.kernels.ops.scan` chooses (C++, Triton or the
    per-op loop); this layer only computes the GEMMs outside it.

    Returns (h_time (T, B, d), h_depth', m_depth', final time state). Steps where ``valid``
    is False keep the time state unchanged.
    """
    time, depth = block.transforms[0], block.transforms[1]
    choice = ops.scan(h_depth, fused_options(block, valid), native_options(block), steps)
    d = h_depth.shape[-1]
    w_time, b_time = weights(time)
    if stage(block, 1) < stage(block, 0):  # time priority: both transforms in the loop
        w_depth, b_depth = weights(depth)
        # What does not depend on h_{t-1}, for all steps at once: the depth transform's
        # h_depth half and bias.
        depth_in = nn.functional.linear(h_depth, w_depth[:, d:], b_depth)
        step_weights = (w_depth[:, :d].t(), w_time[:, :d].t(), w_time[:, d:].t(), b_time)
        h_time, m_time, h_up, m_up = ops.scan_priority(
            choice,
            depth_in,
            m_depth,
            h0,
            c0,
            step_weights,
            valid,
            cells=(time.finish, depth.finish),
            papers=(time.output_form == "paper", depth.output_form == "paper"),
            step=steps["priority"],
        )
        return h_time, h_up, m_up, (h_time[-1], m_time[-1])
    time_in = nn.functional.linear(h_depth, w_time[:, d:], b_time)  # all steps at once
    h_time, m_time = ops.scan_recurrence(
        choice,
        time_in,
        h0,
        c0,
        w_time[:, :d].t(),
        valid,
        cell=time.finish,
        paper=time.output_form == "paper",
        step=steps["recurrence"],
    )
    h_up, m_up = depth_after_loop(block, h_time, h0, h_depth, m_depth)
    return h_time, h_up, m_up, (h_time[-1], m_time[-1])


def run(net: Network, call: Call) -> tuple[Tensor, list[Pair]]:
    """The scan backend on a network's forward (`gridlstm.nn.backends.base`)."""
    h_depth, m_depth = call.inputs[net.depth]
    if m_depth is None:
        m_depth = torch.zeros_like(h_depth)
    steps = compiled.compiled_steps(STEPS, net.compile_mode)
    return layers(
        net.blocks,
        net.dropout,
        h_depth,
        m_depth,
        call.boundary[0],
        net.output_dims,
        call.valid,
        steps,
    )


def layers(
    blocks: nn.ModuleList,
    dropout: nn.Module,
    h_depth: Tensor,
    m_depth: Tensor,
    boundary: Pair,
    output_dims: list[int],
    valid: Tensor | None,
    steps: Mapping[str, Callable] = STEPS,
) -> tuple[Tensor, list[Pair]]:
    """All layers. h_depth, m_depth: the projected input (B, T, d); boundary: the incoming
    time state (h, m) each (L, B, d); ``valid``: (B, T) or None; ``steps``: `STEPS` or
    compiled versions. Returns (output (B, T, d * len(output_dims)), [(h_n, m_n)] each
    (L, B, d))."""
    h0_all, c0_all = boundary
    h_n, c_n = [], []
    # Time-major inside, so that each step's rows are contiguous.
    h_depth, m_depth = h_depth.transpose(0, 1).contiguous(), m_depth.transpose(0, 1).contiguous()
    real = None if valid is None else valid.t().unsqueeze(-1)
    h_time = h_depth
    for index, block in enumerate(blocks):
        if index > 0:
            h_depth = dropout(h_depth)
        h_time, h_depth, m_depth, (h, m) = layer(
            block, h_depth, m_depth, h0_all[index], c0_all[index], real, steps
        )
        h_n.append(h)
        c_n.append(m)
    top = {0: h_time, 1: h_depth}
    output = torch.cat([top[dim] for dim in output_dims], dim=-1).transpose(0, 1)
    return output, [(torch.stack(h_n), torch.stack(c_n))]

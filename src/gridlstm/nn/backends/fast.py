"""The ``fast`` backend: the exact factorisation of a 2-LSTM into LSTM-kernel calls.

K = 1: per layer one LSTM over time (the time transform's weights in `torch.nn.LSTM`'s
kernel) plus one batched depth step for all time steps. K = 0 with one block for all layers:
one kernel call over L steps of zero input with h0 = the projected input. Which
configurations it covers: `blocker`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridlstm.nn.backends.base import Call, Network, Pair
from gridlstm.nn.block import LSTMTransform
from gridlstm.nn.kernels import ops
from gridlstm.nn.kernels.lstm import lstm_kernel


def blocker(net: Network) -> str | None:
    """Why the exact fast path does not apply to a network's configuration (None if it
    does): the LSTM kernel computes the standard LSTM only, one block per call."""
    block = net.blocks[0]
    if net.input_dims != [net.depth]:
        return "input projected onto a grid dimension"
    if net.grid_dims > 1:
        return "more than one grid dimension needs the hyperplane scheduler"
    if net.grid_dims == 0 and len(set(map(id, net.blocks))) > 1:
        return "an untied 1-LSTM has a different block at every layer"
    if net.grid_dims == 0 and net.dropout.p > 0:
        return "dropout between the layers of a 1-LSTM"
    lead = block.transforms[0]
    if not isinstance(lead, LSTMTransform):
        return "the first dimension is non-LSTM" if net.grid_dims else "non-LSTM depth"
    if lead.output_form != "standard" or lead.peephole or lead.coupled:
        return "paper output form, peepholes or coupled gates are not in the LSTM kernel"
    if net.grid_dims == 1:
        if 0 in net.priority:
            return "time priority"
        depth = block.transforms[1]
        if isinstance(depth, LSTMTransform) and (
            depth.output_form != "standard" or depth.peephole or depth.coupled
        ):
            return "paper output form, peepholes or coupled gates in the depth transform"
    return None


def depth_step(transform: nn.Module, h_time: Tensor, h_depth: Tensor, m_depth: Tensor) -> Pair:
    """The depth transform at every (batch, time) position at once.

    A standard LSTM depth transform is one step of an LSTM whose batch is every (b, t): input
    the new time hidden vector (W_ih = columns [0:d]), state the depth (h, m) (W_hh = columns
    [d:2d]). On a GPU the LSTM kernel (cuDNN) runs it and fuses the gate arithmetic. On a
    CPU one GEMM and the native gate pass are 10-33% faster than oneDNN's one-step call,
    forward + backward (docs/benchmarks.md, "Suite speed"), so the transform runs itself
    there wherever the native steps apply.
    """
    if not isinstance(transform, LSTMTransform) or ops.fast_depth_step_native(h_depth):
        return transform(torch.cat([h_time, h_depth], -1), m_depth)
    d = h_depth.shape[-1]
    shape = h_depth.shape
    rows = h_time.reshape(-1, 1, d)
    state = (h_depth.reshape(1, -1, d), m_depth.reshape(1, -1, d))
    w = transform.weight
    _, (h, m) = lstm_kernel(rows, *state, w[:, :d], w[:, d:], transform.bias)
    return h.reshape(shape), m.reshape(shape)


def run(net: Network, call: Call) -> tuple[Tensor, list[Pair]]:
    """The fast backend: per layer one LSTM-kernel call over time plus one batched depth
    step (K = 1), or one kernel call over the layers (tied K = 0); docs/backends.md section 1."""
    inputs, boundary, lengths = call.inputs, call.boundary, call.lengths
    d = net.hidden_size
    h_depth, m_depth = inputs[net.depth]
    if m_depth is None:
        m_depth = torch.zeros_like(h_depth)
    if net.grid_dims == 0:
        # One block applied L times = an LSTM over L steps of zero input (one zero W_ih
        # column) starting from h0 = the projected input.
        lead = net.blocks[0].transforms[0]
        steps = h_depth.new_zeros(h_depth.shape[0], net.num_layers, 1)
        w_ih = lead.weight.new_zeros(lead.weight.shape[0], 1)
        out, _ = lstm_kernel(steps, h_depth[None], m_depth[None], w_ih, lead.weight, lead.bias)
        return out[:, -1], []
    h_n, c_n = [], []
    h0_all, c0_all = boundary[0]
    for layer, block in enumerate(net.blocks):
        if layer > 0:
            h_depth = net.dropout(h_depth)
        h0, c0 = h0_all[layer : layer + 1], c0_all[layer : layer + 1]
        time = block.transforms[0]
        w = time.weight
        h_time, (h_last, c_last) = lstm_kernel(
            h_depth, h0, c0, w[:, d:], w[:, :d], time.bias, lengths=lengths
        )
        h_read = h_time
        if 1 not in block.priority:
            # No depth priority: the depth transform reads the time vector the block got.
            h_read = torch.cat([h0.transpose(0, 1), h_time[:, :-1]], dim=1)
        h_depth, m_depth = depth_step(block.transforms[1], h_read, h_depth, m_depth)
        h_n.append(h_last)
        c_n.append(c_last)
    top = {0: h_time, 1: h_depth}
    output = torch.cat([top[dim] for dim in net.output_dims], dim=-1)
    return output, [(torch.cat(h_n), torch.cat(c_n))]

"""The ``naive`` backend: every cell one at a time, in lexicographic order (the reference
order, and a check on the hyperplane plan)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from gridlstm.nn.backends.base import Call, Network, Pair


def run(net: Network, call: Call) -> tuple[Tensor, list[Pair]]:
    """Every cell (position p, layer l) one at a time, in lexicographic order; cell
    outputs kept in a dict (the reference order, and a check on the hyperplane plan)."""
    x, inputs, boundary, valid = call.x, call.inputs, call.boundary, call.valid
    K, L, d = net.grid_dims, net.num_layers, net.hidden_size
    batch, sizes = x.shape[0], list(x.shape[1:-1])
    positions = list(itertools.product(*(range(s) for s in sizes)))

    out_h: dict[tuple, list[Tensor]] = {}
    out_m: dict[tuple, list[Tensor]] = {}
    zeros = x.new_zeros(batch, d)

    def incoming(p: tuple[int, ...], layer: int) -> tuple[list[Tensor], list[Tensor]]:
        h_in, m_in = [], []
        for k in range(K):
            if p[k] > 0:
                prev = (p[:k] + (p[k] - 1,) + p[k + 1 :], layer)
                h_in.append(out_h[prev][k])
                m_in.append(out_m[prev][k])
            else:
                rest = p[:k] + p[k + 1 :]
                h_in.append(boundary[k][0][(layer, slice(None), *rest)])
                m_in.append(boundary[k][1][(layer, slice(None), *rest)])
        if layer > 0:
            h_below = out_h[(p, layer - 1)][K]
            h_in.append(net.dropout(h_below) if net.dropout.p > 0 else h_below)
            m_in.append(out_m[(p, layer - 1)][K])
        else:
            h_in.append(zeros)
            m_in.append(zeros)
            # Input dimensions: at the bottom layer the incoming h (and, with
            # input_to_memory, m) of the dimension is the projected input.
            for dim, (h_x, m_x) in inputs.items():
                h_in[dim] = h_x[(slice(None), *p)]
                if m_x is not None:
                    m_in[dim] = m_x[(slice(None), *p)]
        return h_in, m_in

    for p in positions:
        for layer in range(L):
            h_in, m_in = incoming(p, layer)
            h_new, m_new = net.blocks[layer](h_in, m_in)
            if valid is not None:
                # Padding steps pass the time state through unchanged.
                real = valid[:, p[0]].unsqueeze(-1)
                h_new[0] = torch.where(real, h_new[0], h_in[0])
                m_new[0] = torch.where(real, m_new[0], m_in[0])
            out_h[p, layer], out_m[p, layer] = h_new, m_new

    tops = [
        torch.cat([out_h[(p, L - 1)][dim] for dim in net.output_dims], dim=-1) for p in positions
    ]
    output = torch.stack(tops, dim=1).reshape(batch, *sizes, -1)
    final = []
    for k in range(K):
        last = [p for p in positions if p[k] == sizes[k] - 1]
        rest_sizes = sizes[:k] + sizes[k + 1 :]
        pair = []
        for store in (out_h, out_m):
            layers = [
                torch.stack([store[(p, layer)][k] for p in last], dim=1) for layer in range(L)
            ]
            pair.append(torch.stack(layers).reshape(L, batch, *rest_sizes, d))
        final.append((pair[0], pair[1]))
    return output, final

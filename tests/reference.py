"""Independent naive per-cell Grid LSTM (docs/model.md, section 1), for tests only.

Written straight from the block equations, one cell at a time, in float64, sharing no code
with `gridlstm.nn`. Weights are given per layer and dimension as full matrices over
H = [h_1; ...; h_N] (grid dimensions, then depth) in gate order (i, f, g, o).
"""

from __future__ import annotations

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------
# General N-D grid, one cell at a time (docs/model.md section 1), for any grid_dims K.


def reference_transform(t: dict, H: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """t: {"kind", "W", "b", "peep", "form", "coupled", "act"} straight from the equations."""
    z = H @ t["W"].T + (t["b"] if t["b"] is not None else 0.0)
    d = m.shape[-1]
    if t["kind"] == "nonlstm":
        act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[t["act"]]
        return act(z), m
    peep = t["peep"]
    if t["coupled"]:
        a_f, a_c, a_o = z[..., :d], z[..., d : 2 * d], z[..., 2 * d :]
        if peep is not None:
            a_f = a_f + peep[0] * m
        g_f = torch.sigmoid(a_f)
        g_u = 1 - g_f
    else:
        a_u, a_f, a_c, a_o = z[..., :d], z[..., d : 2 * d], z[..., 2 * d : 3 * d], z[..., 3 * d :]
        if peep is not None:
            a_u, a_f = a_u + peep[0] * m, a_f + peep[1] * m
        g_u, g_f = torch.sigmoid(a_u), torch.sigmoid(a_f)
    m_new = g_f * m + g_u * torch.tanh(a_c)
    if peep is not None:
        a_o = a_o + peep[-1] * m_new
    g_o = torch.sigmoid(a_o)
    h_new = g_o * torch.tanh(m_new) if t["form"] == "standard" else torch.tanh(g_o * m_new)
    return h_new, m_new


def reference_block(layer: list[dict], priority: list[int], h: list, m: list):
    N = len(h)
    new_h, new_m = list(h), list(m)
    H = torch.cat(h, -1)
    for i in range(N):
        if i not in priority:
            new_h[i], new_m[i] = reference_transform(layer[i], H, m[i])
    for p in priority:
        H_prime = torch.cat(new_h, -1)
        new_h[p], new_m[p] = reference_transform(layer[p], H_prime, m[p])
    return new_h, new_m


def reference_grid(inputs, layers, priority, boundary, L, output_dims, valid=None):
    """inputs: {dim: (h, m or None)} projected input, each (B, *sizes, d), replacing the
    incoming h (and m if given) of that dimension at layer 0. layers[l][i]: transform of dim
    i at layer l. boundary[k] = (h, m) each (L, B, *sizes without k, d). valid (B, T) for
    one grid dim: padding steps keep the time state and output 0.
    Returns (top outputs concatenated over output_dims, [(h, m) leaving each grid dim])."""
    import itertools

    some = next(iter(inputs.values()))[0]
    B, sizes, d = some.shape[0], list(some.shape[1:-1]), some.shape[-1]
    K = len(sizes)
    cell_h, cell_m = {}, {}
    for p in itertools.product(*(range(s) for s in sizes)):
        for layer in range(L):
            h, m = [], []
            for k in range(K):
                if p[k] > 0:
                    q = p[:k] + (p[k] - 1,) + p[k + 1 :]
                    h.append(cell_h[q, layer][k])
                    m.append(cell_m[q, layer][k])
                else:
                    rest = p[:k] + p[k + 1 :]
                    h.append(boundary[k][0][(layer, slice(None), *rest)])
                    m.append(boundary[k][1][(layer, slice(None), *rest)])
            if layer == 0:
                h.append(torch.zeros(B, d, dtype=some.dtype))
                m.append(torch.zeros(B, d, dtype=some.dtype))
                for dim, (h_x, m_x) in inputs.items():
                    h[dim] = h_x[(slice(None), *p)]
                    if m_x is not None:
                        m[dim] = m_x[(slice(None), *p)]
            else:
                h.append(cell_h[p, layer - 1][K])
                m.append(cell_m[p, layer - 1][K])
            new_h, new_m = reference_block(layers[layer], priority, h, m)
            if valid is not None:
                keep = valid[:, p[0]].unsqueeze(-1)
                new_h[0] = torch.where(keep, new_h[0], h[0])
                new_m[0] = torch.where(keep, new_m[0], m[0])
            cell_h[p, layer], cell_m[p, layer] = new_h, new_m
    positions = list(itertools.product(*(range(s) for s in sizes)))
    tops = [torch.cat([cell_h[p, L - 1][i] for i in output_dims], -1) for p in positions]
    top = torch.stack(tops, 1).reshape(B, *sizes, -1)
    if valid is not None:
        top = top * valid.unsqueeze(-1)
    finals = []
    for k in range(K):
        last = [p for p in positions if p[k] == sizes[k] - 1]
        rest = sizes[:k] + sizes[k + 1 :]
        pair = tuple(
            torch.stack(
                [torch.stack([store[p, layer][k] for p in last], 1) for layer in range(L)]
            ).reshape(L, B, *rest, d)
            for store in (cell_h, cell_m)
        )
        finals.append(pair)
    return top, finals

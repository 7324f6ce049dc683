"""Independent naive per-cell Grid LSTM (spec section 1), for tests only.

Written straight from the block equations, one cell at a time, sharing no code with
`gridlstm.nn`. Weights are given per block as full matrices over H = [h_time; h_depth]
in gate order (i, f, g, o).
"""

from __future__ import annotations

import torch
from torch import Tensor


def lstm_transform(W: Tensor, b: Tensor, H: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM transform of the block: gates from H, new memory from this dimension's m."""
    d = m.shape[-1]
    z = H @ W.T + b
    g_u = torch.sigmoid(z[..., 0:d])  # input (update) gate
    g_f = torch.sigmoid(z[..., d : 2 * d])
    g_c = torch.tanh(z[..., 2 * d : 3 * d])
    g_o = torch.sigmoid(z[..., 3 * d : 4 * d])
    m_new = g_f * m + g_u * g_c
    return g_o * torch.tanh(m_new), m_new


def naive_grid2d(
    x: Tensor,
    blocks: list[dict[str, Tensor]],
    num_layers: int,
    priority: str,
    h0: Tensor,
    c0: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """x: (B, T, d) bottom depth hidden vectors. blocks[l] (or blocks[0] if tied) holds
    W_time, b_time, W_depth, b_depth, each W of shape (4d, 2d) over [h_time; h_depth].
    Returns (top depth hidden (B, T, d), h_n (L, B, d), c_n (L, B, d))."""
    B, T, d = x.shape
    h_time = [h0[layer] for layer in range(num_layers)]
    m_time = [c0[layer] for layer in range(num_layers)]
    outputs = []
    for t in range(T):
        h_depth, m_depth = x[:, t], torch.zeros(B, d, dtype=x.dtype)
        for layer in range(num_layers):
            w = blocks[layer if len(blocks) > 1 else 0]
            H = torch.cat([h_time[layer], h_depth], dim=-1)
            new_h_time, new_m_time = lstm_transform(w["W_time"], w["b_time"], H, m_time[layer])
            if priority == "depth":
                H = torch.cat([new_h_time, h_depth], dim=-1)
            h_depth, m_depth = lstm_transform(w["W_depth"], w["b_depth"], H, m_depth)
            h_time[layer], m_time[layer] = new_h_time, new_m_time
        outputs.append(h_depth)
    return torch.stack(outputs, 1), torch.stack(h_time), torch.stack(m_time)

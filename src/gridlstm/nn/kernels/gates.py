"""The LSTM arithmetic after the gate GEMM, in PyTorch: the reference every fused gate
implementation (native C++, Triton) is checked against, and the fallback where none applies.

Kept at the bottom of `gridlstm.nn` (it imports only torch) so that kernels can recompute it
(a differentiable backward for double backward) without importing the layers above them.
"""

from __future__ import annotations

import torch
from torch import Tensor

Peepholes = tuple[Tensor | None, Tensor | None, Tensor | None]


def lstm_reference(
    z: Tensor, m: Tensor, peep: Peepholes, coupled: bool, output_form: str
) -> tuple[Tensor, Tensor]:
    """z (..., G*d) pre-activations (gates i, f, g, o; f, g, o if ``coupled``), m (..., d);
    ``peep`` = (input, forget, output) peephole vectors, broadcastable to m. Returns (h', m');
    h' = o tanh(m') (``standard``) or tanh(o m') (``paper``)."""
    p_i, p_f, p_o = peep
    if coupled:
        f, g, o = z.chunk(3, dim=-1)
    else:
        i, f, g, o = z.chunk(4, dim=-1)
        i = torch.sigmoid(i if p_i is None else i + p_i * m)
    f = torch.sigmoid(f if p_f is None else f + p_f * m)
    if coupled:
        i = 1.0 - f
    m_new = f * m + i * torch.tanh(g)
    o = torch.sigmoid(o if p_o is None else o + p_o * m_new)
    h_new = o * torch.tanh(m_new) if output_form == "standard" else torch.tanh(o * m_new)
    return h_new, m_new


__all__ = ["lstm_reference"]

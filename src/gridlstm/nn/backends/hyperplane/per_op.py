"""The hyperplane scheduler's per-op step: gather, then the block under autograd.

Layers sharing one block (``tied``) make one block call for the whole hyperplane. With
per-layer weights the hyperplane is laid out as (layer, slot), every layer padded to the same
number of slots (empty slots read zeros), and each transform is one batched GEMM
(`torch.baddbmm`) over the layers' stacked weights (`LayerStack`). Nothing is written in
place into a tensor autograd needs: each step's outputs are new. This is the step that
``compile`` compiles and the fallback wherever the handwritten steps do not apply.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridlstm.nn import dispatch
from gridlstm.nn.block import ACTIVATIONS, LSTMTransform, lstm_pointwise


class LayerStack:
    """Every layer's transforms as batched GEMMs (per-layer weights).

    Weights are stacked (and transposed) once per forward. The dimensions a block computes
    from the same H (all non-priority ones) are fused: one `torch.baddbmm` over the layers
    and one pass of the LSTM arithmetic for all of them. ``__call__(dims, H, ms)`` takes rows
    laid out as (layer, slot) and is passed to `GridBlock.forward` as its ``apply``.
    """

    def __init__(self, blocks: nn.ModuleList) -> None:
        self.layers = len(blocks)
        block = blocks[0]
        first_priority = len(block.order) - len(block.priority)
        groups = [tuple(block.order[:first_priority])] + [(d,) for d in block.priority]
        self.groups = {dims: None for dims in groups if dims}
        for dims in self.groups:
            per_layer = [[b.transforms[dim] for b in blocks] for dim in dims]
            if all(self._fusable(per_layer[0][0], ts[0]) for ts in per_layer):
                self.groups[dims] = self._stack(per_layer)
            else:
                self.groups[dims] = [self._stack([ts]) for ts in per_layer]

    @staticmethod
    def _fusable(a: nn.Module, b: nn.Module) -> bool:
        if isinstance(a, LSTMTransform) and isinstance(b, LSTMTransform):
            same = ("peephole", "coupled", "output_form")
            return all(getattr(a, k) == getattr(b, k) for k in same) and (a.bias is None) == (
                b.bias is None
            )
        return a is b  # a lone non-LSTM transform (or the same shared one)

    @staticmethod
    def _stack(per_dim: list[list[nn.Module]]) -> tuple:
        """Stack [dim][layer] transforms: weights (L, in, n*out), bias (L, 1, n*out)."""
        first = per_dim[0][0]
        n = len(per_dim)
        if isinstance(first, LSTMTransform):
            weights = [torch.stack([t.weight for t in ts]) for ts in per_dim]
            biases = (
                [torch.stack([t.bias for t in ts]) for ts in per_dim]
                if first.bias is not None
                else None
            )
            peeps = []
            for gate in range(3):
                vectors = [[t.peepholes()[gate] for t in ts] for ts in per_dim]
                peeps.append(
                    None
                    if vectors[0][0] is None
                    else torch.stack([torch.stack(v) for v in vectors], dim=1).unsqueeze(1)
                )  # (L, 1, n, d)
            options = (tuple(peeps), first.coupled, first.output_form)
            kind = "lstm"
        else:
            weights = [torch.stack([t.linear.weight for t in ts]) for ts in per_dim]
            has_bias = first.linear.bias is not None
            biases = (
                [torch.stack([t.linear.bias for t in ts]) for ts in per_dim] if has_bias else None
            )
            options = (first.activation,)
            kind = "nonlstm"
        weight_t = torch.cat(weights, dim=1).transpose(1, 2)
        bias = None if biases is None else torch.cat(biases, dim=1).unsqueeze(1)
        return kind, n, weight_t, bias, options

    def __call__(self, dims: list[int], H: Tensor, ms: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        entry = self.groups[tuple(dims)]
        if isinstance(entry, list):  # not fusable: one stacked GEMM per dimension
            return [self._run(e, H, [m])[0] for e, m in zip(entry, ms, strict=True)]
        return self._run(entry, H, ms)

    def _run(self, entry: tuple, H: Tensor, ms: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        kind, n, weight_t, bias, options = entry
        L, d = self.layers, ms[0].shape[-1]
        H3 = H.reshape(L, -1, H.shape[-1])
        z = torch.bmm(H3, weight_t) if bias is None else torch.baddbmm(bias, H3, weight_t)
        z = z.reshape(L, z.shape[1], n, -1)  # (L, rows, dims, gates)
        if kind == "nonlstm":
            h = ACTIVATIONS[options[0]](z)
            return [(h[:, :, i].reshape(-1, d), m) for i, m in enumerate(ms)]
        m = (
            torch.stack([m.reshape(L, -1, d) for m in ms], dim=2)
            if n > 1
            else ms[0].reshape(L, -1, 1, d)
        )
        h_new, m_new = lstm_pointwise(z, m, *options)
        return [(h_new[:, :, i].reshape(-1, d), m_new[:, :, i].reshape(-1, d)) for i in range(n)]


def step(
    block: nn.Module,
    stack: LayerStack | None,
    rows_h: Tensor,
    rows_m: Tensor,
    index_h: Tensor,
    index_m: Tensor,
    real: Tensor | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """One hyperplane: gather every cell's incoming (h, m) of all dimensions (``rows_*``:
    (rows, B, d) candidates, ``index_*``: dimension-major picks) and apply the block.

    Rows where ``real`` (slots * B, 1) is False are padding time steps: they pass the time
    state through unchanged. This is the per-step function ``compile`` compiles.
    """
    dims, d = block.num_dims, rows_h.shape[-1]
    h_in = list(rows_h.index_select(0, index_h).reshape(dims, -1, d).unbind(0))
    m_in = list(rows_m.index_select(0, index_m).reshape(dims, -1, d).unbind(0))
    h_new, m_new = block(h_in, m_in, apply=stack)
    if real is not None:
        h_new[0] = torch.where(real, h_new[0], h_in[0])
        m_new[0] = torch.where(real, m_new[0], m_in[0])
    return h_new, m_new


def __getattr__(name: str) -> object:
    raise dispatch.removed(__name__, name)

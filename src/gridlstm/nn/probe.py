"""Per-layer measurements of a 2-LSTM: what flows along depth, and what flows back.

Why: a tied grid applies one block at every layer, so whether depth helps or hurts it is a
question about what happens layer by layer (do the gates close, does the signal shrink, does
the gradient reach the bottom). The fast backends fuse layers and never show a layer's
values, so the probe runs the network once on the ``naive`` backend (the reference order:
every cell one at a time, positions outer and layers inner) with hooks on the blocks and
their LSTM transforms, then restores the backend. The parameters' ``.grad`` is left alone:
gradients are taken with `torch.autograd.grad` with respect to the recorded outputs only.

Every value is a mean over batch, positions and units, one per layer:

- ``depth_h_norm``: L2 norm of the depth hidden vector a layer emits (``input_h_norm``, one
  value: of the vector entering the bottom, i.e. the token's input projection);
- ``time_h_norm``: of the time hidden vector;
- ``{time,depth}_{input,forget,output}_gate``: gate activations of each LSTM transform;
- ``depth_grad_norm``: L2 norm of d loss / d (depth hidden vector emitted by the layer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from torch import Tensor

from gridlstm.nn.block import LSTMTransform
from gridlstm.nn.grid import GridLSTM

DIMS = ("time", "depth")
GATES = {"input": 0, "forget": 1, "output": 3}  # PyTorch's gate order: i, f, g, o


def _mean_norm(x: Tensor) -> float:
    return x.detach().float().norm(dim=-1).mean().item()


def probe_depth(net: GridLSTM, loss_of_forward: Callable[[], Tensor]) -> dict[str, list[float]]:
    """Per-layer statistics of a 2-LSTM (``grid_dims=1``) during one forward and backward.

    ``loss_of_forward()`` must run ``net`` exactly once and return a scalar loss.
    """
    if net.grid_dims != 1:
        raise ValueError(
            f"probe_depth measures 2-LSTMs (grid_dims=1), got grid_dims={net.grid_dims}"
        )
    L = net.num_layers
    blocks = list(dict.fromkeys(net.blocks))  # the distinct blocks (one when tied)
    state: dict = {"calls": 0, "layer": 0, "dim": 0, "block": None}
    sums: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(L)])
    depth_outputs: list[list[Tensor]] = [[] for _ in range(L)]

    def before_block(block, args) -> None:
        layer = state["calls"] % L
        state.update(layer=layer, dim=0, block=block)
        state["calls"] += 1
        if layer == 0:
            sums["input_h_norm"][0].append(_mean_norm(args[0][1]))

    def after_block(block, args, output) -> None:
        h_out = output[0]
        layer = state["layer"]
        sums["time_h_norm"][layer].append(_mean_norm(h_out[0]))
        sums["depth_h_norm"][layer].append(_mean_norm(h_out[1]))
        depth_outputs[layer].append(h_out[1])

    def after_transform(transform, args, output) -> None:
        dim = state["block"].order[state["dim"]]
        state["dim"] += 1
        d = transform.hidden_size
        z = transform.gates(args[0]).detach()
        for gate, index in GATES.items():
            value = torch.sigmoid(z[..., index * d : (index + 1) * d]).mean().item()
            sums[f"{DIMS[dim]}_{gate}_gate"][state["layer"]].append(value)

    handles = []
    for block in blocks:
        handles.append(block.register_forward_pre_hook(before_block))
        handles.append(block.register_forward_hook(after_block))
    # One hook per distinct transform: a transform shared by several blocks (tie_depth_lstm)
    # or by both dimensions (share_dims) is called once per use, and counted once per call.
    transforms = dict.fromkeys(t for block in blocks for t in block.transforms)
    for transform in transforms:
        if isinstance(transform, LSTMTransform):
            handles.append(transform.register_forward_hook(after_transform))
    backend = net.backend
    try:
        net.backend = "naive"
        loss = loss_of_forward()
    finally:
        net.backend = backend
        for handle in handles:
            handle.remove()
    flat = [h for layer in depth_outputs for h in layer]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    index = 0
    for layer in range(L):
        for _ in depth_outputs[layer]:
            grad = grads[index]
            index += 1
            sums["depth_grad_norm"][layer].append(0.0 if grad is None else _mean_norm(grad))
    stats = {
        key: [sum(values) / len(values) for values in per_layer if values]
        for key, per_layer in sums.items()
    }
    return stats

"""`torch.nn.LSTM`'s calling convention for `gridlstm.nn.GridLSTM`: what a forward checks and
reshapes around the backends (unbatched input, packed sequences, an empty batch, sequence
lengths, the incoming state's shapes and device, the input's dtype and layout, autocast's
output dtype), and the tied network's state-dict check. Kept apart from the network so that
`gridlstm.nn.grid` holds its options and one forward; every message is `nn.LSTM`'s where it
has one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

GridLSTM = nn.Module  # a gridlstm.nn.GridLSTM (named so to keep the import one way)
Pair = tuple[Tensor, Tensor]


def map_state(state, dim: int, method: str):
    """Add or drop the batch dimension of every tensor of a (nested) state."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return getattr(state, method)(dim)
    return type(state)(map_state(part, dim, method) for part in state)


def autocast_dtype(output: Tensor, final, device_type: str):
    """Under autocast, the output and state in autocast's dtype on every backend, as
    `nn.LSTM` returns them (an LSTM is one of autocast's lower-precision ops): the backends
    differ in what they compute in (the fast path's kernel in bf16, the others' pointwise
    steps in float32), not in what the caller gets. float32 tensors only, as autocast casts."""
    if not torch.is_autocast_enabled(device_type):
        return output, final
    dtype = torch.get_autocast_dtype(device_type)

    def cast(part):
        if part is None:
            return None
        if isinstance(part, Tensor):
            return part.to(dtype) if part.dtype == torch.float32 else part
        return type(part)(cast(p) for p in part)

    return cast(output), cast(final)


def empty_batch(net: GridLSTM, x: Tensor, batch_at: int):
    """A batch of no rows: the network run on one zero row, cut to none. The outputs keep
    every property of a real forward (dtypes under autocast, a graph to the parameters,
    whose gradients are then zero) at the cost of one row; no backend handles 0 rows."""
    one = x.new_zeros(*x.shape[:batch_at], 1, *x.shape[batch_at + 1 :])
    output, final = net.forward(one)

    def cut(part):
        if part is None:
            return None
        if isinstance(part, Tensor):
            return part.narrow(1, 0, 0)  # states are (L, B, ...)
        return type(part)(cut(p) for p in part)

    return output.narrow(batch_at, 0, 0), cut(final)


def forward_packed(net: GridLSTM, input: PackedSequence, state, lengths):
    """nn.LSTM's packed calling convention on top of the padded one with ``lengths``."""
    if net.grid_dims != 1:
        raise ValueError(
            f"a PackedSequence is a batch of sequences: grid_dims=1 only (got {net.grid_dims})"
        )
    if lengths is not None:
        raise ValueError("a PackedSequence carries its lengths; do not also pass lengths")
    padded, steps = pad_packed_sequence(input, batch_first=net.batch_first)
    output, final = net.forward(padded, state, lengths=steps)
    order = input.sorted_indices  # None: the batch was packed already sorted
    if order is not None:
        output = output.index_select(0 if net.batch_first else 1, order)
        steps = steps.index_select(0, order.to(steps.device))
    data = pack_padded_sequence(output, steps, batch_first=net.batch_first).data
    packed = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
    return packed, final


def check_input(net: GridLSTM, input: Tensor) -> Tensor:
    weight = next(net.parameters(), None)
    if (
        weight is not None
        and input.dtype != weight.dtype
        and not torch._C._is_any_autocast_enabled()
    ):  # nn.LSTM's check and words (its RNNBase.check_input), before any kernel's own error
        raise ValueError(
            f"GridLSTM input dtype ({input.dtype}) does not match weight dtype "
            f"({weight.dtype}). Convert input: input.to({weight.dtype}), or convert model: "
            f"model.to({input.dtype})"
        )
    expected = net.grid_dims + 2
    if input.dim() != expected or input.shape[-1] != net.input_size:
        if net.grid_dims == 1:  # the layout the user chose, as nn.LSTM names it
            layout = (
                "(batch, time, features)"
                if net.batch_first
                else ("(time, batch, features), batch_first=False")
            )
        else:
            layout = f"(batch, {net.grid_dims} grid dims, features)"
        raise ValueError(
            f"input must be {expected}-D {layout}, or {expected - 1}-D without the batch, "
            f"with features = input_size = {net.input_size}; got shape "
            f"{tuple(input.shape)}"
        )
    return input


def valid_steps(net: GridLSTM, x: Tensor, lengths: Tensor | None) -> Tensor | None:
    """(B, T) bool mask of real (non-padding) steps, or None."""
    if lengths is None:
        return None
    if net.grid_dims != 1:
        raise ValueError("lengths applies to one grid dimension (grid_dims=1) only")
    lengths = torch.as_tensor(lengths, device=x.device)
    steps = x.shape[1]
    if lengths.shape != (x.shape[0],) or lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(
            f"lengths must hold one length in [1, {steps}] per batch row ({x.shape[0]}), "
            f"got {lengths.tolist()}"
        )
    return torch.arange(steps, device=x.device)[None, :] < lengths[:, None]


def boundary(net: GridLSTM, x: Tensor, state) -> list[Pair]:
    """Incoming (h, m) per grid dimension, each (L, B, *sizes without k, d)."""
    batch, sizes = x.shape[0], list(x.shape[1:-1])
    shapes = [
        (net.num_layers, batch, *sizes[:k], *sizes[k + 1 :], net.hidden_size)
        for k in range(net.grid_dims)
    ]
    if state is None:
        return [(x.new_zeros(s), x.new_zeros(s)) for s in shapes]
    pairs = [state] if net.grid_dims == 1 else list(state)
    if len(pairs) != net.grid_dims:
        raise ValueError(f"state must hold one (h, m) pair per grid dimension ({net.grid_dims})")
    for k, (pair, shape) in enumerate(zip(pairs, shapes, strict=True)):
        for name, tensor in zip(("h", "m"), pair, strict=True):
            if tensor.device != x.device:  # nn.LSTM's error: never a silent copy
                raise RuntimeError(
                    "Input and hidden tensors are not at the same device, found input "
                    f"tensor at {x.device} and hidden tensor at {tensor.device}"
                )
            if tuple(tensor.shape) != shape:
                raise ValueError(
                    f"state {name} of grid dimension {k} must have shape {shape}, "
                    f"got {tuple(tensor.shape)}"
                )
    return [(h.to(x), m.to(x)) for h, m in pairs]


def check_tied_state(
    net: GridLSTM,
    state_dict: dict,
    prefix: str,
    _meta: dict,
    _strict: bool,
    _missing: list,
    _unexpected: list,
    error_msgs: list[str],
) -> None:
    """A tied network holds one block (or one depth transform) under every layer's name:
    loading per-layer values that differ would silently keep only the last layer's. Such
    a state dict (e.g. from an untied network) is refused; the reverse (tied -> untied) is
    a valid initialisation and loads."""
    shared = ""
    if net.tied:
        shared = "blocks.{}."
    elif net.tie_depth_lstm:
        shared = "blocks.{}.transforms." + str(net.depth) + "."
    if not shared:
        return
    first = prefix + shared.format(0)
    for key, value in state_dict.items():
        if not key.startswith(first):
            continue
        rest = key[len(first) :]
        for layer in range(1, net.num_layers):
            other = state_dict.get(prefix + shared.format(layer) + rest)
            if other is not None and not torch.equal(other, value):
                mode = "tied=True" if net.tied else "tie_depth_lstm=True"
                error_msgs.append(
                    f"{prefix + shared.format(layer) + rest} differs from {key}, but this "
                    f"network ({mode}) shares it across layers: the state dict comes from "
                    "a network with per-layer weights"
                )
                return

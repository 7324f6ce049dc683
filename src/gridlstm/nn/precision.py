"""The dtype recurrent kernels (cuDNN, oneDNN) run in under autocast, decided here, not by
autocast.

Two reasons autocast cannot be left to decide. A kernel may not exist for the autocast dtype
(cuDNN's RNNs take bfloat16 only from 9.13; oneDNN's only on CPUs with bf16 instructions): the
run would fail or fall onto a slow generic path. And on CUDA, autocast's own cuDNN-RNN wrapper
casts to float16 whatever dtype autocast was asked for (PyTorch's ``AutocastRNN.cpp``; seen on
an H100 with torch 2.11): a ``bf16-mixed`` run would quietly run every recurrence in float16,
with its narrow range and no gradient scaler. So the kernels are called with autocast off, on
inputs and weights cast to `autocast_kernel_dtype` explicitly.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

CUDNN_BF16_RNN = 91300  # cuDNN's RNN API takes bfloat16 from 9.13 on


def kernel_dtype(
    device_type: str, dtype: torch.dtype, cudnn_version: int | None, onednn_bf16: bool
) -> torch.dtype:
    """The dtype the LSTM kernel runs in when autocast asks for ``dtype``: that dtype where
    the installed library has a kernel for it, else float32. Without this, a bf16 run would
    fail (older cuDNN; oneDNN on CPUs without bf16) or fall onto a slow generic path."""
    if dtype == torch.bfloat16:
        if device_type == "cuda" and (cudnn_version is None or cudnn_version < CUDNN_BF16_RNN):
            return torch.float32
        if device_type == "cpu" and not onednn_bf16:
            return torch.float32
    return dtype


def autocast_kernel_dtype(device: torch.device) -> torch.dtype | None:
    """Under autocast on ``device``: the dtype the kernel runs in (`kernel_dtype`); else None."""
    if device.type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device.type):
        return None
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    onednn = device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return kernel_dtype(device.type, torch.get_autocast_dtype(device.type), cudnn, onednn)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, PackedSequence):
        return value._replace(data=value.data.to(dtype))
    if isinstance(value, Tensor):
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_cast(part, dtype) for part in value)
    return value


@contextlib.contextmanager
def quiet_relayout() -> Iterator[None]:
    """Silence cuDNN's "weights are not part of single contiguous chunk of memory ... call
    flatten_parameters()" warning. Our kernels get freshly cast or sliced weights each call,
    packed back to back; where cuDNN's own layout differs (bfloat16 with several layers, or
    sizes its alignment pads) it compacts them once more, correctly, and the advice to call
    ``flatten_parameters()`` is one the caller cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not part of single contiguous chunk")
        yield


def run_rnn(rnn: nn.RNNBase, input: Tensor | PackedSequence, hx: Any = None) -> Any:
    """``rnn(input, hx)`` for a `torch.nn.LSTM` / `torch.nn.GRU` (or a subclass), its kernel in
    the dtype `autocast_kernel_dtype` decides. Outside autocast (or off CPU/CUDA) it is torch's
    forward itself. Under autocast the weights are cast into one buffer in their flat order,
    which cuDNN takes as it is for float16 and for one bfloat16 layer. For several bfloat16
    layers its layout differs (seen on an H100, cuDNN 9.19) and it compacts the buffer once
    more, with a warning the caller cannot act on (`quiet_relayout`). Either way this costs
    a copy or two of the weights per call, as autocast's own wrapper does."""
    device = (input.data if isinstance(input, PackedSequence) else input).device
    dtype = autocast_kernel_dtype(device)
    if dtype is None:  # torch's own forward: a subclass's forward may be what called us
        torch_class = next(c for c in type(rnn).__mro__ if c.__module__ == nn.LSTM.__module__)
        return torch_class.forward(rnn, input, hx)
    names, weights = zip(*rnn.named_parameters(recurse=False), strict=True)  # flat order
    with torch.autocast(device.type, enabled=False), quiet_relayout():
        flat = torch.cat([w.reshape(-1) for w in weights]).to(dtype)
        views = flat.split([w.numel() for w in weights])
        params = {n: v.view_as(w) for n, v, w in zip(names, views, weights, strict=True)}
        return torch.func.functional_call(rnn, params, (_cast(input, dtype), _cast(hx, dtype)))

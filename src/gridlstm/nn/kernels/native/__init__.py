"""Native CPU steps: the LSTM gate arithmetic, the hyperplane step loop and the scan time
loops in C++ (``gridlstm_native.cpp``), each behind the PyTorch code it replaces.

The PyTorch steps stay the reference and the fallback: the native path runs on CPU tensors
in float32 / float64 where the options are covered (standard or paper output form, no
peepholes or coupled gates), and only when its library built (`build.load`; one warning
names what is missing otherwise). ``GRIDLSTM_NATIVE=0`` in the environment (never build or load it),
``with gridlstm.nn.dispatch.without("native"):`` or ``gridlstm.nn.dispatch.reference()`` run the
PyTorch steps instead, to compare or time both.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.kernels.native import build


def __getattr__(name: str) -> object:
    raise dispatch.removed(__name__, name)


def blocker(t: Tensor) -> str | None:
    """Why the native steps may not run on tensors like ``t`` now (None if they may): a CPU
    float32/64 tensor, no CPU autocast, not switched off (`gridlstm.nn.dispatch`, or
    ``GRIDLSTM_NATIVE=0``), no torch.func transform or torch.compile tracing, and the
    library loads."""
    reason = dispatch.switched_off("native")
    if reason is not None:
        return reason
    if build.switched_off():
        return f"{build.ENV_SWITCH}=0"
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return f"not a float32/float64 CPU tensor ({t.dtype} on {t.device.type})"
    if torch.is_autocast_enabled("cpu"):  # its GEMMs run in autocast's dtype: PyTorch steps
        return "CPU autocast"
    if not build.load():
        return f"the library is not available: {build.build_info().get('reason')}"
    return None


def release_buffers() -> int:
    """Free the idle buffers the native steps keep for reuse; returns the bytes freed."""
    if "loaded" not in build.build_info() or not build.build_info()["loaded"]:
        return 0
    return int(torch.ops.gridlstm.pool_release())


__all__ = ["blocker", "release_buffers"]

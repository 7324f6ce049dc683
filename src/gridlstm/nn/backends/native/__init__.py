"""Native CPU steps: the LSTM gate arithmetic, the hyperplane step loop and the scan time
loops in C++ (``gridlstm_native.cpp``), each behind the PyTorch code it replaces.

The PyTorch steps stay the reference and the fallback: the native path runs on CPU tensors
in float32 / float64 where the options are covered (standard or paper output form, no
peepholes or coupled gates), and only when its library built (`build.load`; one warning
names what is missing otherwise). ``GRIDLSTM_NATIVE=0`` in the environment or
``with python_steps():`` runs the PyTorch steps instead, to compare or time both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from gridlstm.nn.backends.native import build

_PYTHON: list[bool] = [False]


@contextlib.contextmanager
def python_steps() -> Iterator[None]:
    """Run the PyTorch steps even where the native ones apply (nestable)."""
    _PYTHON.append(True)
    try:
        yield
    finally:
        _PYTHON.pop()


def applies(t: Tensor) -> bool:
    """Whether the native steps may run on tensors like ``t`` now: a CPU float32/64 tensor,
    no CPU autocast, not switched off, not traced by torch.compile, and the library loads."""
    if _PYTHON[-1] or build.switched_off():
        return False
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return False
    if torch.is_autocast_enabled("cpu"):  # its GEMMs run in autocast's dtype: PyTorch steps
        return False
    if torch.compiler.is_compiling():
        return False
    return build.load()


__all__ = ["applies", "python_steps"]

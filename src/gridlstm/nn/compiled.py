"""Opt-in ``torch.compile`` of the schedulers' per-step functions (``GridLSTM(compile=...)``).

The scan and hyperplane backends run a Python loop of small steps; compiling the step (not
the loop) keeps compilation to one graph per step function, whatever the sequence length or
grid size: shapes are compiled dynamic, so a new length or a hyperplane of another width
does not recompile. ``"reduce-overhead"`` adds CUDA graphs on GPUs (torch.compile records
one graph per distinct step shape and replays it); on a CPU it is the same as ``"default"``.
Compiled and eager steps compute the same function (tests/test_compile.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gridlstm.nn import scan, wavefront

MODES = ("default", "reduce-overhead", "max-autotune")
_COMPILED: dict[tuple[Callable, str], Callable] = {}


def compiled(fn: Callable, mode: str) -> Callable:
    """``fn`` compiled once per process and mode (dynamo caches on the function's code, so
    every network shares the compiled graphs)."""
    key = (fn, mode)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, dynamic=True, mode=mode)
    return _COMPILED[key]


def scan_steps(mode: str | None) -> dict[str, Callable]:
    """The scan backend's step functions (`gridlstm.nn.scan.STEPS`), compiled if ``mode``."""
    if mode is None:
        return scan.STEPS
    return {name: compiled(fn, mode) for name, fn in scan.STEPS.items()}


def hyperplane_step(mode: str | None) -> Callable:
    """The hyperplane scheduler's step function (`gridlstm.nn.wavefront.step`)."""
    return wavefront.step if mode is None else compiled(wavefront.step, mode)

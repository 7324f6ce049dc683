"""Opt-in ``torch.compile`` of the schedulers' per-step functions (``GridLSTM(compile=...)``).

The scan and hyperplane backends run a Python loop of small steps; compiling the step (not
the loop) keeps compilation small whatever the sequence length or grid size. Shapes follow
torch.compile's automatic dynamic shapes: a step is compiled for the first shape it sees
and, once a second shape turns up, once more with dynamic sizes, which then serves every
length and hyperplane width. (Every step of the scan has the same shape, so it stays
static until the batch size changes; compiling dynamic from the start measured 1.7x slower
on the hyperplane steps on a CPU, docs/benchmarks.md.) ``"reduce-overhead"`` adds CUDA
graphs on GPUs (torch.compile records one graph per distinct step shape and replays it); on
a CPU it is the same as ``"default"``. Compiled and eager steps compute the same function
(tests/test_compile.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MODES = ("default", "reduce-overhead", "max-autotune")
_COMPILED: dict[tuple[Callable, str], Callable] = {}


def compiled(fn: Callable, mode: str) -> Callable:
    """``fn`` compiled once per process and mode (dynamo caches on the function's code, so
    every network shares the compiled graphs)."""
    key = (fn, mode)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, mode=mode)
    return _COMPILED[key]


def mode_now(mode: str | None) -> str | None:
    """``mode``, except that CUDA graphs are left out when grad is off.

    With CUDA graphs torch.compile keeps a step's outputs in a memory pool that later
    replays reuse once it sees a new iteration, and it assumes one at every call made
    without a pending backward. Under ``no_grad`` (validation, decoding) that is every step,
    while the loop still holds the earlier steps' outputs; so there the steps run compiled
    without CUDA graphs.
    """
    if mode == "reduce-overhead" and not torch.is_grad_enabled():
        return "default"
    return mode


def compiled_steps(steps: dict[str, Callable], mode: str | None) -> dict[str, Callable]:
    """A backend's step functions (e.g. `gridlstm.nn.backends.scan.STEPS`), compiled if
    ``mode``."""
    mode = mode_now(mode)
    if mode is None:
        return steps
    return {name: compiled(fn, mode) for name, fn in steps.items()}


def compiled_step(step: Callable, mode: str | None) -> Callable:
    """One step function (e.g. `gridlstm.nn.backends.hyperplane.step`), compiled if ``mode``."""
    mode = mode_now(mode)
    return step if mode is None else compiled(step, mode)

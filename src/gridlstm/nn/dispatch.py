"""Which step implementation may run: the one switch for the per-op reference steps, and a
record of what ran and why.

The step paths, each one word in code, bench rows, dispatch notes, docs and tests:

* ``per-op`` (`per_op` in code): PyTorch ops recorded by autograd, the reference every other
  path is tested against: the hyperplane's per-op steps
  (`gridlstm.nn.backends.hyperplane.per_op`), the scan's per-op loop
  (`gridlstm.nn.kernels.time_loop`), the gate arithmetic of `gridlstm.nn.kernels.gates`;
* ``handwritten``: the hyperplane's steps in PyTorch with a handwritten backward
  (`gridlstm.nn.kernels.handwritten`);
* ``native``: the C++ steps on a CPU (`gridlstm.nn.kernels.native`);
* ``fused``: the Triton steps on a GPU (`gridlstm.nn.kernels.fused`).

"The PyTorch steps" names the two written in PyTorch (per-op, or handwritten where it
applies): what runs when the native or fused steps step aside.

Each faster path computes the reference's function or steps aside before it runs. ``with
reference():`` or ``GRIDLSTM_STEPS=reference`` in the environment makes all of them step aside
(the per-op steps everywhere); ``with without("native"):`` only the ones named (to compare or
time two paths). Both are context-local (`contextvars`): two threads or asyncio tasks each keep
their own mode.

``with explain() as record:`` collects, for every choice made inside it, which
implementation ran and why each other one stepped aside (also logged at DEBUG level on
``gridlstm.nn.dispatch``), as ``torch.backends`` users inspect what ran.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import warnings
from collections.abc import Iterator

import torch

IMPLEMENTATIONS = ("native", "fused", "handwritten")
ENV = "GRIDLSTM_STEPS"  # "fast" (default) or "reference"
CHOICES = ("fast", "reference")
log = logging.getLogger(__name__)

_OFF: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "gridlstm_dispatch_off", default=None
)
_INTERPRET: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gridlstm_interpret", default=False
)
_RECORD: contextvars.ContextVar[list[tuple[str, str, str | None]] | None] = contextvars.ContextVar(
    "gridlstm_dispatch_record", default=None
)
_WARNED: set[str] = set()


def env_mode() -> str:
    """``GRIDLSTM_STEPS``: ``fast`` (default) or ``reference``. Another value warns once,
    naming the choices, and keeps the fast steps."""
    value = os.environ.get(ENV, "").strip().lower() or "fast"
    if value not in CHOICES:
        if value not in _WARNED:
            _WARNED.add(value)
            warnings.warn(
                f"gridlstm: {ENV}={value!r} is not one of {', '.join(CHOICES)}; the fast "
                "steps stay on",
                RuntimeWarning,
                stacklevel=3,
            )
        return "fast"
    return value


@contextlib.contextmanager
def _switched(off: frozenset[str]) -> Iterator[None]:
    token = _OFF.set((_OFF.get() or frozenset()) | off)
    try:
        yield
    finally:
        _OFF.reset(token)


def reference() -> contextlib.AbstractContextManager[None]:
    """Run the per-op reference steps everywhere inside (nestable, context-local)."""
    return _switched(frozenset(IMPLEMENTATIONS))


def without(*names: str) -> contextlib.AbstractContextManager[None]:
    """Let the named implementations step aside inside (nestable, context-local)."""
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown step implementation {unknown}; choose from {IMPLEMENTATIONS}")
    return _switched(frozenset(names))


def removed(module: str, name: str) -> AttributeError:
    """The error for a step switch removed in 0.4 (deprecated in 0.3), naming its new
    spelling; a module's ``__getattr__`` raises it."""
    names = REMOVED.get(f"{module}.{name}")
    if names is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    new = ", ".join(repr(n) for n in names)
    return AttributeError(
        f"{module}.{name}() was removed in gridlstm 0.4: use "
        f"gridlstm.nn.dispatch.without({new}) or gridlstm.nn.dispatch.reference()"
    )


# The step switches of 0.2 (deprecated in 0.3, removed in 0.4) and what each meant.
REMOVED = {
    "gridlstm.nn.kernels.native.python_steps": ("native",),
    "gridlstm.nn.kernels.fused.pytorch_steps": ("fused",),
    "gridlstm.nn.backends.hyperplane.per_op_steps": ("handwritten", "fused"),
    "gridlstm.nn.backends.hyperplane.per_op.per_op_steps": ("handwritten", "fused"),
}


@contextlib.contextmanager
def interpreted() -> Iterator[None]:
    """Run the fused steps on CPU tensors through Triton's interpreter (for tests)."""
    token = _INTERPRET.set(True)
    try:
        yield
    finally:
        _INTERPRET.reset(token)


def interpreting() -> bool:
    """Whether the fused steps run through Triton's CPU interpreter (`interpreted`)."""
    return _INTERPRET.get()


def forward_ad_active() -> bool:
    """Whether forward-mode AD may be running (``torch.autograd.forward_ad.dual_level``
    open): dual tensors reach the steps then, and only the per-op steps carry tangents.
    PyTorch keeps the open level in a module variable with no public reader."""
    return getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0


def dispatch_mode() -> str | None:
    """The active TorchDispatchMode's class name (FakeTensorMode for torch.export and shape
    propagation, FlopCounterMode, a user's own), or None. The native and fused ops have no
    fake kernels and no FLOP formulas: under any mode the per-op steps run, so that every
    mode sees the same ops as on the reference path."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode, is_in_torch_dispatch_mode

    if not is_in_torch_dispatch_mode():
        return None
    return type(_get_current_dispatch_mode()).__name__.lstrip("_")


def fake_tensors(*tensors: object) -> bool:
    """Whether a fake-tensor mode is active or any of ``tensors`` is a fake tensor: index
    plans made now hold no values and must not be kept for later calls."""
    from torch._subclasses.fake_tensor import FakeTensor

    fake = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE)
    return fake is not None or any(isinstance(t, FakeTensor) for t in tensors)


def switched_off(name: str) -> str | None:
    """Why ``name`` must step aside whatever the tensors are (None if it need not): the
    switches above, a torch.func transform (the fast steps' autograd Functions and ops have
    no batching or functorch rules), forward-mode AD (no jvp rules either), a dispatch mode
    (`dispatch_mode`), or torch.compile tracing (it traces the reference)."""
    if name in (_OFF.get() or ()):
        return f"switched off (gridlstm.nn.dispatch: {sorted(_OFF.get() or ())})"
    if env_mode() == "reference":
        return f"{ENV}=reference"
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform (grad, vmap, jacrev...) is active"
    if forward_ad_active():
        return "forward-mode AD (a dual level is open; the native and fused steps have no jvp)"
    if mode := dispatch_mode():
        return f"a dispatch mode is active ({mode}: the per-op steps are what it understands)"
    if torch.compiler.is_compiling():
        return "torch.compile traces the reference steps"
    return None


def note(choice: str, implementation: str, reason: str | None) -> None:
    """Record one choice: ``implementation`` ran (``reason`` None) or stepped aside."""
    if torch.compiler.is_compiling():  # traced code records nothing (no side effects)
        return
    record = _RECORD.get()
    if record is not None:
        record.append((choice, implementation, reason))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: %s %s", choice, implementation, "ran" if reason is None else reason)


class _Unique(list):
    """A record that keeps each choice once (a training run makes the same ones every step)."""

    def append(self, item: tuple[str, str, str | None]) -> None:
        if item not in self:
            super().append(item)


@contextlib.contextmanager
def explain(unique: bool = False) -> Iterator[list[tuple[str, str, str | None]]]:
    """Collect (choice, implementation, why it stepped aside or None if it ran) inside;
    ``unique=True`` keeps each once (a whole run's record stays small)."""
    record: list[tuple[str, str, str | None]] = _Unique() if unique else []
    token = _RECORD.set(record)
    try:
        yield record
    finally:
        _RECORD.reset(token)


__all__ = [
    "ENV",
    "IMPLEMENTATIONS",
    "explain",
    "interpreted",
    "interpreting",
    "note",
    "reference",
    "switched_off",
    "without",
]

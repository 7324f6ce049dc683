"""GridLSTM's backends, one module each, all with one interface (`gridlstm.nn.backends.base`):
``run(net, call) -> (output, final)``. `BACKENDS` is the one table that maps a backend's name
to it, and `choose` the one place a call's backend is decided; inside a backend the step
implementation (native, fused, handwritten, PyTorch) is chosen by the kernels and the
switches of `gridlstm.nn.dispatch`, which records both choices (`dispatch.explain`).

``fast`` (LSTM-kernel factorisation), ``scan`` (per-layer time scan), ``hyperplane``
(anti-diagonal scheduler: plan, per-op and handwritten steps), ``naive`` (one cell at a
time, the reference order); ``compiled`` holds torch.compile of the scan and hyperplane
per-step functions. All compute the same function (tests/test_grid.py against the float64
reference in tests/reference.py; tests/test_equivalence.py at the edges).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.backends import fast, hyperplane, naive, scan
from gridlstm.nn.backends.base import Call, Network, Pair
from gridlstm.nn.kernels.lstm import kernel_agrees

BACKENDS: dict[str, Callable[[Network, Call], tuple[Tensor, list[Pair]]]] = {
    "fast": fast.run,
    "scan": scan.run,
    "hyperplane": hyperplane.run,
    "naive": naive.run,
}


AUTO = ("fast", "scan", "hyperplane")  # auto's order: the first that applies


def resolve(requested: str, net: Network) -> str:
    """The backend a network runs: ``requested``, refused where it does not apply to the
    network's configuration (each backend's ``blocker``), since it would compute a different
    function; ``auto``: the first of `AUTO` that applies and did not measure slower for it
    (the scan's ``slower``)."""
    blockers = {"fast": fast.blocker(net), "scan": scan.blocker(net)}
    if requested == "auto":
        passed = {name: why for name, why in blockers.items() if why}
        if (why := scan.slower(net)) is not None:
            passed.setdefault("scan", why)
        chosen = next(b for b in AUTO if b not in passed)
        for name in AUTO[: AUTO.index(chosen)]:
            dispatch.note("auto backend", name, passed[name])
        return chosen
    if blockers.get(requested):
        others = [b for b in BACKENDS if b != requested and not blockers.get(b)]
        raise ValueError(
            f"backend={requested!r} does not apply: {blockers[requested]}; use "
            + " or ".join(repr(b) for b in others)
        )
    return requested


def choose(backend: str, net: Network, x: Tensor) -> str:
    """The backend that runs this call: ``backend`` (the network's, already checked against
    its configuration), except that ``fast`` steps aside where our call of nn.LSTM's kernel
    does not compute what nn.LSTM computes on this device and dtype (`kernel_agrees`)."""
    if backend == "fast":
        reason = None
        if not kernel_agrees(x.device, x.dtype):
            reason = f"nn.LSTM's kernel call disagrees with nn.LSTM ({x.device.type}, {x.dtype})"
        dispatch.note("backend", "fast", reason)
        if reason is None:
            return backend
        backend = "scan" if net.grid_dims == 1 else "hyperplane"
    dispatch.note("backend", backend, None)
    return backend


def run(backend: str, net: Network, call: Call) -> tuple[Tensor, list[Pair]]:
    """``call`` on the backend `choose` picks."""
    return BACKENDS[choose(backend, net, call.x)](net, call)


__all__ = ["AUTO", "BACKENDS", "Call", "Network", "choose", "resolve", "run"]

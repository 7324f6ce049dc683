"""The kernel layer's entrance: for each op the backends call, the one function that picks
its implementation and records why (`gridlstm.nn.dispatch.explain` reads the record).

Why one place: each step has a PyTorch reference and up to two faster implementations
(``native`` C++ on a CPU, ``fused`` Triton on a GPU); when the choice was made where each
backend needed it, the same question ("may the native steps run here?") was asked in five
modules with five sets of conditions. Here each op's order of preference and its conditions
sit together:

* `gates`: the LSTM arithmetic after the gate GEMM: the native op (a plain LSTM on a CPU),
  else `gridlstm.nn.kernels.gates.lstm_reference`;
* `hyperplane`: every step of a hyperplane plan: ``fused``, ``native``, ``handwritten``
  (the PyTorch steps with a handwritten backward), or None (the backend's per-op steps);
  `hyperplane_steps` runs the choice;
* `scan`: a 2-LSTM layer's time recurrence: ``fused``, ``native`` or None (the PyTorch
  loop, `gridlstm.nn.kernels.time_loop`); `scan_recurrence` and `scan_priority` run the
  choice;
* `fast_depth_step_native`: whether the fast backend's batched depth step runs on the native
  gates (a CPU) rather than `torch.nn.LSTM`'s kernel.

The options a faster path covers (peepholes, coupled gates, sequence lengths, ...) are the
caller's to state (it knows the blocks); the tensors' side (device, dtype, autocast, the
switches, torch.func, tracing) is checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.kernels import fused, handwritten, native, time_loop
from gridlstm.nn.kernels.gates import Peepholes, lstm_reference
from gridlstm.nn.kernels.plans import Layout, Plan


def gates(
    z: Tensor, m: Tensor, peep: Peepholes, coupled: bool, output_form: str
) -> tuple[Tensor, Tensor]:
    """The LSTM arithmetic after the gate GEMM: z (..., G*d) pre-activations, m (..., d);
    ``peep`` = (input, forget, output) peephole vectors, broadcastable to m. Without
    peepholes or coupled gates, on a CPU, with z and m in one dtype, one fused native op
    computes it; else the PyTorch reference."""
    plain = all(p is None for p in peep) and not coupled and z.dtype == m.dtype
    if plain and _native(z, "gates"):
        from gridlstm.nn.kernels.native import functions  # needs the built library

        m = m.expand(z.shape[:-1] + m.shape[-1:])
        return functions.lstm_gates(z, m, output_form == "paper")
    return lstm_reference(z, m, peep, coupled, output_form)


def hyperplane(static: Tensor, fused_options: str | None, options: str | None) -> str | None:
    """Which implementation runs a hyperplane plan's steps on states like ``static``:
    ``fused`` (a GPU; ``fused_options`` None: the plan's options are covered, the paper
    output form included), ``native`` (a CPU, no autocast), ``handwritten`` (``options``
    None: the handwritten backward covers them), or None: the per-op steps."""
    fused_reason = fused_options or fused.blocker(static)
    dispatch.note("hyperplane", "fused", fused_reason)
    if fused_reason is None:
        return "fused"
    hand = options or dispatch.switched_off("handwritten")
    dispatch.note("hyperplane", "handwritten", hand)
    if hand is not None:
        return None
    if handwritten.gemm_dtype(static) == static.dtype and _native(static, "hyperplane"):
        return "native"
    return "handwritten"


def hyperplane_steps(
    choice: str,
    layout: Layout,
    static: Tensor,
    params: list,
    picks: tuple[Tensor, Tensor],
    dropout: float = 0.0,
    *,
    plan: Plan,
    paper: tuple[bool, ...],
) -> Tensor:
    """The output rows ``picks`` (of h, then of m; (len(picks[0]) + len(picks[1]), B, d))
    of every step of a plan, by the implementation `hyperplane` chose."""
    if choice == "fused":
        return fused.run(layout, static, params, picks, dropout, plan=plan, paper=paper)
    if choice == "native":
        from gridlstm.nn.kernels.native import functions  # needs the built library

        return functions.hyperplane_steps(layout, static, params, picks, dropout)
    if choice == "handwritten":
        return handwritten.run(layout, static, params, picks, dropout)
    raise ValueError(f"unknown hyperplane step {choice!r}: fused, native or handwritten")


def scan(
    h_depth: Tensor,
    fused_options: str | None,
    native_options: str | None,
    steps: Mapping[str, Callable] = time_loop.STEPS,
) -> str | None:
    """Which implementation runs a 2-LSTM layer's time recurrence on inputs like ``h_depth``
    (T, B, d): ``fused`` (a GPU), ``native`` (a CPU), or None: the per-op loop (also where
    ``steps`` are compiled ones: torch.compile traces that loop). Each ``*_options`` is why
    the layer's options exclude that path (None: covered)."""
    if h_depth.shape[0] == 0:  # no time step: the per-op loop's own message
        return None
    compiled = None if steps is time_loop.STEPS else "compiled steps (the per-op loop's)"
    fused_reason = compiled or fused_options or fused.blocker(h_depth)
    dispatch.note("scan", "fused", fused_reason)
    if fused_reason is None:
        return "fused"
    native_reason = compiled or native_options or native.blocker(h_depth)
    dispatch.note("scan", "native", native_reason)
    return "native" if native_reason is None else None


def scan_recurrence(
    choice: str | None,
    time_in: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_prev: Tensor,
    real: Tensor | None,
    *,
    cell: time_loop.Cell,
    paper: bool,
    step: Callable = time_loop.recurrence_step,
) -> tuple[Tensor, Tensor]:
    """A 2-LSTM layer's time recurrence (depth or no priority) from its input half
    ``time_in`` (T, B, 4d), by the implementation `scan` chose: (hs, ms) each (T, B, d).
    Every implementation takes (time_in, h0, c0, w_prev, real) after the GEMM; the fast ones
    compute the plain LSTM in the output form ``paper`` says, the per-op loop ``cell``."""
    if choice == "fused":
        from gridlstm.nn.kernels.fused import scan as fused_scan  # imports Triton

        return fused_scan.recurrence(time_in, h0, c0, w_prev, real, paper)
    if choice == "native":
        from gridlstm.nn.kernels.native import functions  # needs the built library

        return functions.recurrence(time_in, h0, c0, w_prev, real, paper)
    return time_loop.recurrence(cell, time_in, h0, c0, w_prev, real, step)


def scan_priority(
    choice: str | None,
    depth_in: Tensor,
    m_depth: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: tuple[Tensor, Tensor, Tensor, Tensor | None],
    real: Tensor | None,
    *,
    cells: tuple[time_loop.Cell, time_loop.Cell],
    papers: tuple[bool, bool],
    step: Callable = time_loop.priority_step,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A 2-LSTM layer's time recurrence with time priority from the depth transform's input
    half ``depth_in`` (T, B, 4d): (hs, ms, h_depth', m_depth'), by the implementation `scan`
    chose (``native`` or None: the per-op loop; the fused step has no time priority).
    ``weights``: (w_depth_prev, w_time_prev, w_time_new, b_time); ``cells`` and ``papers``:
    (time, depth)."""
    if choice == "native":
        from gridlstm.nn.kernels.native import functions  # needs the built library

        return functions.priority_recurrence(depth_in, m_depth, h0, c0, weights, real, papers)
    if choice is not None:
        raise ValueError(f"no {choice!r} time-priority recurrence: native or the per-op loop")
    return time_loop.priority_recurrence(*cells, depth_in, m_depth, h0, c0, weights, real, step)


def fast_depth_step_native(h_depth: Tensor) -> bool:
    """Whether the fast backend's batched depth step runs on the native gates (one GEMM and
    the native gate pass, faster than oneDNN's one-step LSTM call on a CPU) rather than
    `torch.nn.LSTM`'s kernel."""
    return _native(h_depth, "fast_depth_step")


def _native(t: Tensor, op: str) -> bool:
    """Whether the native steps run ``op`` on tensors like ``t`` (`gridlstm.nn.kernels.
    native.blocker`), recorded for `gridlstm.nn.dispatch.explain`."""
    reason = native.blocker(t)
    dispatch.note(op, "native", reason)
    return reason is None


__all__ = [
    "fast_depth_step_native",
    "gates",
    "hyperplane",
    "hyperplane_steps",
    "scan",
    "scan_priority",
    "scan_recurrence",
]

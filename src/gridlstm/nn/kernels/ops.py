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
  (the PyTorch steps with a hand-written backward), or None (the backend's per-op steps);
  `hyperplane_steps` runs the choice;
* `scan`: a 2-LSTM layer's time recurrence: ``fused``, ``native`` or None (the backend's
  PyTorch loop);
* `fast_depth_step_native`: whether the fast backend's batched depth step runs on the native
  gates (a CPU) rather than `torch.nn.LSTM`'s kernel.

The options a faster path covers (peepholes, coupled gates, sequence lengths, ...) are the
caller's to state (it knows the blocks); the tensors' side (device, dtype, autocast, the
switches, torch.func, tracing) is checked here.
"""

from __future__ import annotations

from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.kernels import fused, handwritten, native
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
    if plain and native.applies(z, "gates"):
        from gridlstm.nn.kernels.native import functions  # needs the built library

        m = m.expand(z.shape[:-1] + m.shape[-1:])
        return functions.lstm_gates(z, m, output_form == "paper")
    return lstm_reference(z, m, peep, coupled, output_form)


def hyperplane(static: Tensor, fused_options: str | None, options: str | None) -> str | None:
    """Which implementation runs a hyperplane plan's steps on states like ``static``:
    ``fused`` (a GPU; ``fused_options`` None: the plan's options are covered, the paper
    output form included), ``native`` (a CPU, no autocast), ``handwritten`` (``options``
    None: the hand-written backward covers them), or None: the per-op steps."""
    use_fused = (fused_options or fused.blocker(static)) is None
    hand = options or dispatch.switched_off("handwritten")
    dispatch.note("hyperplane steps", "handwritten", "the fused step ran" if use_fused else hand)
    if use_fused:
        return "fused"
    if hand is not None:
        return None
    if handwritten.gemm_dtype(static) == static.dtype and native.applies(static, "hyperplane step"):
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


def scan(h_depth: Tensor, fused_options: str | None, native_options: str | None) -> str | None:
    """Which implementation runs a 2-LSTM layer's time recurrence on inputs like ``h_depth``
    (T, B, d): ``fused`` (a GPU), ``native`` (a CPU), or None: the PyTorch loop. Each
    ``*_options`` is why the layer's options exclude that path (None: covered)."""
    if h_depth.shape[0] == 0:  # no time step: the PyTorch loop's own message
        return None
    if fused_options is None and fused.blocker(h_depth) is None:
        return "fused"
    if native_options is None and native.applies(h_depth, "scan recurrence"):
        return "native"
    return None


def fast_depth_step_native(h_depth: Tensor) -> bool:
    """Whether the fast backend's batched depth step runs on the native gates (one GEMM and
    the native gate pass, faster than oneDNN's one-step LSTM call on a CPU) rather than
    `torch.nn.LSTM`'s kernel."""
    return native.applies(h_depth, "fast depth step")


__all__ = [
    "fast_depth_step_native",
    "gates",
    "hyperplane",
    "hyperplane_steps",
    "scan",
]

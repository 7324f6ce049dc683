"""The fused Triton hyperplane step: on a GPU, one kernel launch per transform group and
hyperplane step (gather, GEMM and LSTM arithmetic together) instead of the ~10 launches of
the handwritten PyTorch step, which left the GPU launch-bound (docs/benchmarks.md). The
scan's time recurrence (depth or no priority) uses the same kernels, one launch per time
step (`gridlstm.nn.kernels.fused.scan`).

It sits behind the PyTorch steps, which stay the reference and the fallback: the scheduler
(`gridlstm.nn.backends.hyperplane.scheduler`) takes it for CUDA tensors in float32, bfloat16
or float16 where every transform is an LSTM without peepholes or coupled gates (standard or
paper output form), without sequence lengths, autocast or torch.compile, when Triton imports
and a probe at first use (per device, dtype and float32 matmul precision) agrees with the
PyTorch steps.
Otherwise, with ``GRIDLSTM_TRITON=0`` in the environment, or under `gridlstm.nn.dispatch`'
switches, the PyTorch steps run; a failed probe says so once.

``with gridlstm.nn.dispatch.interpreted():`` runs it on CPU tensors through Triton's
interpreter: slow (tens of ms per program), it is how the tests check the kernels on a
machine without a GPU.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gridlstm.nn import dispatch
from gridlstm.nn.kernels.fused.matmul_precision import float32_matmul_precision

if TYPE_CHECKING:
    from gridlstm.nn.kernels.plans import Layout, Plan

ENV_SWITCH = "GRIDLSTM_TRITON"  # 0 / false / off / no: never use the fused step
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# (device, dtype, float32 matmul precision) -> whether the probe agreed
_PROBED: dict[tuple[str, torch.dtype, str], bool] = {}
interpreted = dispatch.interpreted
interpreting = dispatch.interpreting


def __getattr__(name: str) -> object:
    raise dispatch.removed(__name__, name)


def missing() -> str | None:
    """Why Triton cannot be used at all (None if it can)."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "false", "off", "no"):
        return f"{ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    try:
        import triton  # noqa: F401  (ships with the CUDA builds of torch)
    except ImportError:
        return "Triton is not installed"
    return None


def blocker(t: Tensor) -> str | None:
    """Why the fused kernels do not apply to tensors like ``t`` (device, dtype, autocast,
    switched off, torch.compile or torch.func in use, Triton missing, failed probe); None if
    they do. The options are checked by the caller: the hyperplane scheduler's
    ``handwritten_blocker`` for the hyperplane step, the scan's ``fused_options`` for its
    recurrence; `gridlstm.nn.kernels.ops` asks both and records the decision."""
    reason = dispatch.switched_off("fused")  # includes torch.compile and torch.func
    if reason is not None:
        return reason
    wanted = "cpu" if interpreting() else "cuda"
    if t.device.type != wanted:
        return f"not a {wanted.upper()} tensor"
    if t.dtype not in DTYPES:
        return f"{t.dtype} (the fused step runs float32, bfloat16 and float16)"
    if torch.is_autocast_enabled(t.device.type):
        return "autocast (its GEMMs would run in another dtype than the state)"
    reason = missing()
    if reason is None and not probe(t.device, t.dtype):
        reason = "its probe disagreed with the PyTorch steps"
    return reason


def run(
    layout: Layout,
    static: Tensor,
    params: list,
    picks: tuple[Tensor, Tensor],
    dropout: float = 0.0,
    *,
    plan: Plan,
    paper: tuple[bool, ...],
) -> Tensor:
    """`gridlstm.nn.kernels.handwritten.run`'s result through the fused step (its signature,
    plus the plan's sources and each group's output form, which the fused step also
    covers)."""
    from gridlstm.nn.kernels.fused.steps import FusedSteps, launch_device
    from gridlstm.nn.kernels.plans import sources

    if plan.fused is None:
        with torch.inference_mode(False):  # kept across calls: no inference tensors
            plan.fused = sources(layout, static.device)
    with launch_device(static):
        out = FusedSteps.apply(layout, plan.fused, paper, interpreting(), dropout, static, *params)
    return torch.cat([out[0].index_select(0, picks[0]), out[1].index_select(0, picks[1])])


def probe(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the fused step computes what the PyTorch steps compute on this device and
    dtype: checked once per process, device and float32 matmul precision on the `PROBES`
    (forward and gradients, at the kernel level), so that a Triton or driver problem falls
    back instead of training wrongly."""
    precision = float32_matmul_precision()
    key = (str(device), dtype, precision)
    if key in _PROBED:
        return _PROBED[key]
    tolerance = probe_tolerance(dtype, precision)
    problem = "its results differ from the PyTorch steps'"
    try:
        with torch.inference_mode(False), torch.enable_grad():
            agrees = all(_agrees(device, dtype, case, tolerance) for case in PROBES)
    except Exception as error:
        agrees, problem = False, f"it raised {type(error).__name__}: {error}"
    if not agrees:
        warnings.warn(
            f"gridlstm: the fused Triton hyperplane step is not usable on {device.type} in "
            f"{dtype}: {problem}; the PyTorch steps run instead",
            RuntimeWarning,
            stacklevel=3,
        )
    _PROBED[key] = agrees
    return agrees


def probe_tolerance(dtype: torch.dtype, precision: str) -> float:
    """How far the fused step may differ from the PyTorch steps in the probe: float32 GEMMs
    under TF32 (precision ``high``) or bf16 passes (``medium``) keep about 10 or 8 bits of
    mantissa, so the PyTorch steps themselves move by about 1e-3 or 1e-2 there (elementwise).
    In 16 bits both paths round every stored h, m and gradient, in different orders, so they
    are compared as whole tensors (`close_16bit`): 8 units in the last place of the tensor's
    largest entry (measured through Triton's interpreter at the probe's sizes: at most 2.9 in
    bfloat16, 1.7 in float16; a wrong kernel is off by the size of the entries)."""
    if dtype != torch.float32:
        return 8 * torch.finfo(dtype).eps
    return {"highest": 1e-4, "high": 5e-3}.get(precision, 3e-2)


def close(got: Tensor, expected: Tensor, tolerance: float) -> bool:
    """The probe's comparison in float32: elementwise (`torch.allclose`)."""
    return torch.allclose(got.float(), expected.float(), atol=tolerance, rtol=tolerance)


def close_16bit(got: Tensor, expected: Tensor, tolerance: float) -> bool:
    """The probe's comparison in 16 bits: max |got - expected| <= tolerance times the
    largest |expected|, whatever its size (a floor of 1 would let small gradients differ by
    their whole size); NaN anywhere disagrees."""
    got, expected = got.float(), expected.float()
    if got.shape != expected.shape or got.isnan().any() or expected.isnan().any():
        return False
    return bool((got - expected).abs().max() <= tolerance * expected.abs().max())


# The probe's cases: the hyperplane step of a 3-LSTM with per-layer weights (two transform
# groups: the grid dimensions, then depth by priority), with dropout between layers, and with
# one block for all layers in the paper output form; the scan's recurrence in both forms. At
# d = 40 every kernel runs more than one tile of units (BLOCK_D = 32) and its inner loop over
# the GEMM's reduction more than once (3 d = 120 > BLOCK_K = 32): the paths real sizes take.
PROBE_D, PROBE_BATCH = 40, 2
PROBES = (
    {"kind": "steps", "layers": 2, "batched": True, "paper": False, "dropout": 0.0},
    {"kind": "steps", "layers": 2, "batched": True, "paper": False, "dropout": 0.25},
    {"kind": "steps", "layers": 2, "batched": False, "paper": True, "dropout": 0.0},
    {"kind": "recurrence", "paper": True},
    {"kind": "recurrence", "paper": False},
)


def _agrees(device: torch.device, dtype: torch.dtype, case: dict, tolerance: float) -> bool:
    """Outputs and gradients of the fused Functions against the PyTorch steps on random
    weights and states, at the kernel level (no network is built)."""
    from gridlstm.nn.kernels import plans, recompute
    from gridlstm.nn.kernels.fused.scan import FusedRecurrence
    from gridlstm.nn.kernels.fused.steps import FusedSteps
    from gridlstm.nn.kernels.plans import sources
    from gridlstm.nn.kernels.pytorch_steps import steps_forward

    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> Tensor:
        values = torch.rand(*shape, generator=generator) - 0.5
        return values.to(device, dtype).requires_grad_()

    d, batch = PROBE_D, PROBE_BATCH
    if case["kind"] == "recurrence":
        inputs = (rand(3, batch, 4 * d), rand(batch, d), rand(batch, d), rand(d, 4 * d))
        got = FusedRecurrence.apply(case["paper"], interpreting(), *inputs)
        expected = recompute.recurrence_reference(*inputs, None, case["paper"])
    else:
        layers = case["layers"] if case["batched"] else 1
        plan = plans.to_device(
            plans.plan([3, 2], case["layers"], case["batched"], [2], False), device
        )
        layout = plans.layout(plan, layers, [(0, 1), (2,)])
        weights = [rand(layers, 3 * d, len(g.dims) * 4 * d) for g in layout.transforms]
        biases = [rand(layers, 1, len(g.dims) * 4 * d) for g in layout.transforms]
        static = rand(2, layout.static_rows, batch, d)
        paper = (case["paper"],) * len(layout.transforms)
        forms = tuple("paper" if p else "standard" for p in paper)
        params = (static, *weights, *biases)
        p = case["dropout"]
        # Both paths draw the dropout noise alike (shape and order): one seed, the same masks.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            got = (
                FusedSteps.apply(
                    layout, sources(layout, device), paper, interpreting(), p, *params
                ),
            )
            torch.manual_seed(0)
            expected = (
                steps_forward(layout, dtype, p, static, (*weights, *biases), False, None, forms)[0],
            )
        inputs = params
    results = []
    for outputs in (got, expected):
        loss = sum(o.float().square().sum() for o in outputs)
        results.append([*outputs, *torch.autograd.grad(loss, inputs)])
    compare = close if dtype == torch.float32 else close_16bit
    return all(compare(a, b, tolerance) for a, b in zip(*results, strict=True))


__all__ = [
    "ENV_SWITCH",
    "blocker",
    "interpreted",
    "interpreting",
    "missing",
    "probe",
    "probe_tolerance",
    "run",
]

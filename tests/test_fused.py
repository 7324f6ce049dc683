"""`gridlstm.nn.kernels.fused`: the fused Triton hyperplane step, run on the CPU through
Triton's interpreter (`fused.interpreted`), against the float64 reference (tests/reference.py),
plus when the scheduler takes it and how it falls back.

The kernels compute in float32 with IEEE dots here, so outputs are compared to the float64
reference at 2e-6 and gradients at 2e-5 (float32 rounding over a few dozen cells); the 16-bit
kernels are checked through the probe (the interpreter's bfloat16 arithmetic is worked
around: `gridlstm.nn.kernels.fused.kernels`). The interpreter needs tens of ms per program:
the shapes are tiny, a representative few cases run by default and the whole option matrix
is `slow`.
GPU sizes and bf16 are in tests/test_gpu.py."""

from __future__ import annotations

import types
import warnings

import pytest
import torch

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.kernels import fused
from tests.test_grid import IN, build, flat_outputs, reference_case

pytest.importorskip("triton", reason="Triton ships with the CUDA builds of torch")

# Every case of the reference matrix (tests/test_grid.py) that the fused step covers; the
# others (non-LSTM transforms, peepholes, coupled gates) fall back (test below).
COVERED = [
    "plain",
    "no-priority",
    "time-priority",
    "two-priorities",
    "tied",
    "tie-depth-lstm",
    "share-dims",
    "paper-form",
    "no-bias",
    "input-to-memory",
    "output-all-sides",
    "input-on-grid-dim",
]
MATRIX = [
    (k, case)
    for k in (0, 1, 2)
    for case in COVERED
    if not (k == 0 and case in ("time-priority", "two-priorities", "share-dims"))
]
DEFAULT = [(2, "plain"), (2, "tied"), (1, "paper-form"), (1, "time-priority"), (0, "no-bias")]


@pytest.fixture
def launches(monkeypatch) -> list[int]:
    """Counts the runs of the fused Functions (so a test knows the kernels ran)."""
    from gridlstm.nn.kernels.fused import scan, steps

    count: list[int] = []
    for function in (steps.FusedSteps, scan.FusedRecurrence):

        def counting(*args, original=function.apply):
            count.append(1)
            return original(*args)

        monkeypatch.setattr(function, "apply", counting)
    return count


def check_against_reference(
    grid_dims: int, case: str, launches: list[int], backend: str = "hyperplane"
) -> None:
    with fused.interpreted():  # a failed probe would fall back silently: check it here
        assert fused.probe(torch.device("cpu"), torch.float32), "the fused step's probe failed"
    launches.clear()  # count only this test's own launches
    net64 = build(grid_dims, case)
    net64.backend = backend
    x, state, reference, weights, ref_grads = reference_case(net64, grid_dims)

    net = net64.float()  # the same weights in float32 (in place: the reference is computed)
    x32 = x.detach().float().requires_grad_()
    state32 = [tuple(t.detach().float().requires_grad_() for t in pair) for pair in state]
    call_state = None if grid_dims == 0 else (state32[0] if grid_dims == 1 else state32)
    with fused.interpreted():
        got = flat_outputs(*net(x32, call_state))
        inputs32 = [x32, *(t for pair in state32 for t in pair), *net.parameters()]
        grads = torch.autograd.grad(
            sum((w.float() * t).sum() for w, t in zip(weights, got, strict=True)), inputs32
        )
    assert launches, "the fused step did not run"
    for g, r in zip(got, reference, strict=True):
        torch.testing.assert_close(g.double(), r, atol=2e-6, rtol=2e-6)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), r, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize(("grid_dims", "case"), DEFAULT, ids=[f"K{k}-{c}" for k, c in DEFAULT])
def test_fused_step_matches_the_float64_reference(grid_dims, case, launches):
    check_against_reference(grid_dims, case, launches)


SLOW = [c for c in MATRIX if c not in DEFAULT]

# The scan's fused recurrence: 2-LSTM options without time priority.
SCAN = [
    "plain",
    "no-priority",
    "tied",
    "tie-depth-lstm",
    "share-dims",
    "paper-form",
    "no-bias",
    "input-to-memory",
    "output-all-sides",
]
SCAN_DEFAULT = ["paper-form", "no-priority"]


@pytest.mark.parametrize("case", SCAN_DEFAULT)
def test_fused_scan_recurrence_matches_the_float64_reference(case, launches):
    check_against_reference(1, case, launches, backend="scan")


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in SCAN if c not in SCAN_DEFAULT])
def test_fused_scan_recurrence_matches_the_float64_reference_over_every_covered_option(
    case, launches
):
    check_against_reference(1, case, launches, backend="scan")


def test_the_scan_keeps_time_priority_and_lengths_on_its_own_loop(launches):
    """Time priority and sequence lengths are not in the fused recurrence: the scan's own
    loop runs, with the same results as outside interpreted()."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, IN)
    for case, lengths in (("time-priority", None), ("plain", torch.tensor([5, 3]))):
        net = build(1, case).float()
        net.backend = "scan"
        with fused.interpreted():
            got, _ = net(x, lengths=lengths)
        expected, _ = net(x, lengths=lengths)
        torch.testing.assert_close(got, expected)
    assert not launches


@pytest.mark.slow
@pytest.mark.parametrize(("grid_dims", "case"), SLOW, ids=[f"K{k}-{c}" for k, c in SLOW])
def test_fused_step_matches_the_float64_reference_over_every_covered_option(
    grid_dims, case, launches
):
    check_against_reference(grid_dims, case, launches)


def test_batched_layers_with_padding_slots_and_tiles_larger_than_one(launches, monkeypatch):
    """Per-layer weights on a grid whose hyperplanes hold different numbers of cells per
    layer (padding slots read zeros), with the row and unit tiles split (block sizes
    smaller than the rows and units), against the PyTorch steps."""
    from gridlstm.nn.kernels.fused import steps

    monkeypatch.setattr(steps, "BLOCK_M", 16)
    monkeypatch.setattr(steps, "BLOCK_D", 16)
    monkeypatch.setattr(steps, "BLOCK_K", 16)
    torch.manual_seed(0)
    net = build(2, "plain").float()
    x = torch.randn(7, 4, 3, IN)
    with dispatch.without("fused"):
        expected = flat_outputs(*net(x))
        expected_grads = torch.autograd.grad(
            sum(t.square().sum() for t in expected), list(net.parameters())
        )
    with fused.interpreted():
        got = flat_outputs(*net(x))
        grads = torch.autograd.grad(sum(t.square().sum() for t in got), list(net.parameters()))
    assert launches
    for g, e in zip([*got, *grads], [*expected, *expected_grads], strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_inference_keeps_nothing_for_the_backward_and_agrees(launches):
    torch.manual_seed(0)
    net = build(2, "tied").float()
    x = torch.randn(2, 3, 2, IN)
    with torch.no_grad():
        with dispatch.without("fused"):
            expected, _ = net(x)
        with fused.interpreted():
            got, _ = net(x)
    assert launches
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------ dispatch and fallback
def fake_cuda(dtype: torch.dtype = torch.float32) -> types.SimpleNamespace:
    """What `fused.blocker` reads of a tensor, as a CUDA tensor would show it (no GPU here)."""
    return types.SimpleNamespace(device=torch.device("cuda"), dtype=dtype)


@pytest.fixture
def probe_result(monkeypatch) -> list[bool]:
    """The probe's answer, set by the test (the real probe needs a GPU for CUDA)."""
    answer = [True]
    monkeypatch.setattr(fused, "probe", lambda device, dtype: answer[0])
    return answer


def test_cuda_tensors_take_the_fused_step(probe_result):
    for dtype in fused.DTYPES:
        assert fused.blocker(fake_cuda(dtype)) is None
    assert "float64" in fused.blocker(fake_cuda(torch.float64))
    assert fused.blocker(torch.zeros(1)) == "not a CUDA tensor"
    with dispatch.without("fused"):
        assert "switched off" in fused.blocker(fake_cuda())
    probe_result[0] = False
    assert "probe" in fused.blocker(fake_cuda())


def test_switch_and_missing_triton_are_named(monkeypatch, probe_result):
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    assert fused.blocker(fake_cuda()) == "GRIDLSTM_TRITON=0"
    monkeypatch.delenv(fused.ENV_SWITCH)
    monkeypatch.setitem(__import__("sys").modules, "triton", None)  # as if not installed
    assert fused.missing() == "Triton is not installed"


@pytest.mark.parametrize("priority", [["depth"], ["depth", 0]], ids=["depth", "depth-then-0"])
def test_dropout_between_layers_drops_the_units_the_pytorch_steps_drop(priority, launches):
    """Dropout on the depth h passed up: the fused step draws the masks as the handwritten
    steps do, so for a seed both drop the same units and agree, outputs and gradients
    (including a priority order in which a later group reads the new depth h, unmasked)."""
    torch.manual_seed(0)
    net = GridLSTM(IN, 4, 3, 2, priority=priority, dropout=0.4).train()
    x = torch.randn(2, 3, 2, IN)
    results = []
    for context in (dispatch.without("fused"), fused.interpreted()):
        with context:
            torch.manual_seed(5)
            out, _ = net(x)
            grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
        results.append([out, *grads])
    assert launches
    assert not torch.equal(results[0][0], net.eval()(x)[0])  # dropout did act
    for got, expected in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["peephole", "nonlstm-depth-relu", "coupled-peephole"])
def test_options_it_does_not_cover_run_the_pytorch_steps(case, launches):
    torch.manual_seed(0)
    net = build(2, case).float()
    net.backend = "hyperplane"
    x = torch.randn(2, 3, 2, IN)
    with fused.interpreted():
        got, _ = net(x)
    with dispatch.without("fused"):
        expected, _ = net(x)
    assert not launches
    torch.testing.assert_close(got, expected)


def test_a_kernel_that_fails_at_first_use_falls_back_with_one_warning(monkeypatch, launches):
    """A Triton compile or launch failure (here: the kernels cannot be built) is caught by the
    probe: one warning, then the PyTorch steps, with the same results."""
    from gridlstm.nn.kernels.fused import kernels

    def broken(interpret: bool = False):
        raise RuntimeError("no kernel for this GPU")

    monkeypatch.setattr(kernels, "build", broken)
    monkeypatch.setattr(fused, "_PROBED", {})
    net = build(2, "tied").float()
    x = torch.randn(2, 3, 2, IN)
    with dispatch.without("fused"):
        expected, _ = net(x)
    with fused.interpreted(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, _ = net(x)
        second, _ = net(x)
    messages = [str(w.message) for w in caught if "fused Triton" in str(w.message)]
    assert len(messages) == 1 and "no kernel for this GPU" in messages[0], messages
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)


def test_a_probe_that_disagrees_falls_back(monkeypatch):
    """Kernels that run but compute something else (here: the forward's output negated) fail
    the probe, which names the disagreement."""
    from gridlstm.nn.kernels.fused import steps

    original = steps.FusedSteps.apply
    monkeypatch.setattr(steps.FusedSteps, "apply", lambda *args: -original(*args))
    monkeypatch.setattr(fused, "_PROBED", {})
    with fused.interpreted(), pytest.warns(RuntimeWarning, match="differ from the PyTorch"):
        assert not fused.probe(torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_the_16_bit_kernels_pass_the_probe_and_a_wrong_one_fails_it(dtype, monkeypatch):
    """In bfloat16 and float16 the fused steps agree with the PyTorch steps in the same dtype
    within the probe's 16-bit tolerance, dropout and the scan's recurrence included (an
    H100 refused bfloat16 before: elementwise, its rounding differs by a few units in the
    last place); the tolerance still catches kernels that compute something else."""
    from gridlstm.nn.kernels.fused import scan

    monkeypatch.setattr(fused, "_PROBED", {})
    with fused.interpreted(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no refusal
        assert fused.probe(torch.device("cpu"), dtype)
    original = scan.FusedRecurrence.apply
    monkeypatch.setattr(  # the recurrence's h off by 5% of its size: a wrong kernel
        scan.FusedRecurrence, "apply", lambda *a: tuple(t * 1.05 for t in original(*a))
    )
    monkeypatch.setattr(fused, "_PROBED", {})
    with fused.interpreted(), pytest.warns(RuntimeWarning, match="differ from the PyTorch"):
        assert not fused.probe(torch.device("cpu"), dtype)


def test_the_probe_catches_a_fault_only_dropout_or_a_second_tile_would_show(monkeypatch):
    """The probe runs what real sizes run: dropout between layers (a fused step whose masks
    scale wrongly is caught), more than one tile of units and inner-loop iterations."""
    from gridlstm.nn.kernels.fused import steps

    assert fused.PROBE_D > steps.BLOCK_D and 3 * fused.PROBE_D > steps.BLOCK_K
    real_mask = steps.depth_mask
    monkeypatch.setattr(steps, "depth_mask", lambda *a: real_mask(*a) * 0.5)
    monkeypatch.setattr(fused, "_PROBED", {})
    with fused.interpreted(), pytest.warns(RuntimeWarning, match="differ from the PyTorch"):
        assert not fused.probe(torch.device("cpu"), torch.float32)


def test_the_reencoder_with_dropout_trains_on_the_fused_step(launches):
    """The translation model (a 3-LSTM over target x source, dropout between layers as in the
    translation presets) takes the fused step, with the PyTorch steps' loss and gradients."""
    from gridlstm.nn import Reencoder

    torch.manual_seed(0)
    model = Reencoder(11, 13, hidden_size=8, num_layers=2, dropout=0.2).train()
    src, tgt = torch.randint(1, 11, (2, 4)), torch.randint(1, 13, (2, 3))
    lengths = torch.tensor([4, 3])
    results = []
    for context in (dispatch.without("fused"), fused.interpreted()):
        with context:
            torch.manual_seed(3)
            loss = model(src, lengths, tgt).logsumexp(-1).mean()
            results.append([loss, *torch.autograd.grad(loss, list(model.parameters()))])
    assert launches
    for got, expected in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_float32_dots_follow_torchs_tf32_setting():
    """float32 GEMMs in the kernel are as precise as torch's: IEEE unless TF32 is allowed."""
    from gridlstm.nn.kernels.fused.steps import dot_precision

    matmul = torch.backends.cuda.matmul  # a settings object: set and restored by hand
    before = matmul.allow_tf32
    try:
        for allowed, expected in ((False, "ieee"), (True, "tf32")):
            matmul.allow_tf32 = allowed
            assert dot_precision(torch.float32) == expected
            assert dot_precision(torch.bfloat16) == "tf32"  # Triton's default; only float32 cares
    finally:
        matmul.allow_tf32 = before


def test_the_probe_follows_the_float32_matmul_precision(monkeypatch):
    """Under TF32 the PyTorch steps themselves move by about 1e-3, so a 1e-4 probe would
    switch the fused step off for the whole process: the tolerance follows the precision in
    force, and each precision (and device) is probed once."""
    tolerances: list[float] = []

    def agrees(device, dtype, case, tolerance):
        tolerances.append(tolerance)
        return True

    monkeypatch.setattr(fused, "_agrees", agrees)
    monkeypatch.setattr(fused, "_PROBED", {})
    before = torch.get_float32_matmul_precision()
    try:
        for precision in ("highest", "high", "highest", "high"):
            torch.set_float32_matmul_precision(precision)
            assert fused.probe(torch.device("cpu"), torch.float32)
    finally:
        torch.set_float32_matmul_precision(before)
    assert tolerances == [1e-4] * len(fused.PROBES) + [5e-3] * len(fused.PROBES)
    assert fused.probe_tolerance(torch.bfloat16, "highest") == 8 * 2**-7  # 8 bf16 ulps
    assert fused.probe_tolerance(torch.float16, "highest") == 8 * 2**-10


def test_the_16_bit_comparison_scales_with_the_tensor_not_a_floor_of_one():
    """Gradients of a small loss are small: 10% off must disagree at any size (a floor of 1
    on the scale let bfloat16 gradients of size 1e-3 differ by 60 times their size), while a
    few units in the last place of the largest entry agree."""
    tolerance = fused.probe_tolerance(torch.bfloat16, "highest")
    for size in (1e-3, 1.0, 50.0):
        expected = torch.linspace(-size, size, 64).to(torch.bfloat16)
        assert not fused.close_16bit(expected * 1.1, expected, tolerance)
        nudged = expected.float() + 3 * 2**-7 * size * torch.sign(torch.randn(64))
        assert fused.close_16bit(nudged.to(torch.bfloat16), expected, tolerance)
    assert fused.close_16bit(torch.zeros(3), torch.zeros(3), tolerance)
    assert not fused.close_16bit(torch.tensor([float("nan")]), torch.ones(1), tolerance)


def test_the_fused_step_follows_tf32_whichever_api_set_it():
    """After PyTorch's newer switch (``fp32_precision``), reading the legacy TF32 flags
    raises; the fused step reads either without raising and still runs (issue 50 D1). In a
    subprocess: the switch is process-wide."""
    import subprocess
    import sys

    code = """
import torch
from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.kernels.fused.matmul_precision import allows_tf32, float32_matmul_precision
from gridlstm.nn.kernels.fused.steps import dot_precision
assert not allows_tf32() and float32_matmul_precision() == "highest"
assert dot_precision(torch.float32) == "ieee"
torch.backends.cuda.matmul.fp32_precision = "tf32"
try:
    torch.backends.cuda.matmul.allow_tf32
    raise SystemExit("the legacy flag no longer raises here: the test needs another trigger")
except RuntimeError:
    pass
assert allows_tf32() and float32_matmul_precision() == "high"
assert dot_precision(torch.float32) == "tf32"
try:
    import triton  # noqa: F401
except ImportError:
    print("ok (no triton)")
    raise SystemExit(0)
torch.manual_seed(0)
net = GridLSTM(3, 4, 2, 2, batch_first=True, backend="hyperplane")
with dispatch.interpreted(), dispatch.explain() as record:
    out, _ = net(torch.randn(2, 3, 2, 3))
ran = {implementation for _, implementation, reason in record if reason is None}
assert "fused" in ran, record
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_the_fused_steps_launch_under_the_tensors_cuda_device():
    """Triton launches on the current device: the fused entry points enter the tensors'
    device first (a no-op on the CPU and under the interpreter)."""
    from gridlstm.nn.kernels.fused import steps

    cpu = steps.launch_device(torch.zeros(1))
    assert not isinstance(cpu, torch.cuda.device)
    on_gpu1 = steps.launch_device(types.SimpleNamespace(device=torch.device("cuda:1")))
    assert isinstance(on_gpu1, torch.cuda.device) and on_gpu1.idx == 1

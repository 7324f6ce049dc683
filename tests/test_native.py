"""`gridlstm.nn.kernels.native`: the C++ gate op and loops against the PyTorch steps.

The reference matrix (tests/test_grid.py) and the handwritten tests (tests/test_handwritten.py)
run the native path too; here: the op itself (gradcheck, `torch.library.opcheck`, agreement
with `lstm_pointwise`), the scan loops against the per-op loops to 1e-12 in float64, that the
native path is the one that ran, and the switches: the environment variable, `python_steps`,
a forced portable build, and a missing compiler or failed build falling back with one
warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.block import lstm_pointwise
from gridlstm.nn.kernels import native
from gridlstm.nn.kernels.native import build

if not build.load():  # the suite's CI builds it; elsewhere say why, visibly
    pytest.skip(
        f"the native library did not build: {build.build_info()['reason']}", allow_module_level=True
    )

from gridlstm.nn.kernels.native import functions

NO_PEEPHOLES = (None, None, None)


@pytest.mark.parametrize("paper", [False, True], ids=["standard", "paper"])
@pytest.mark.parametrize("n", [1, 2])
def test_gate_op_gradcheck(paper, n):
    torch.manual_seed(0)
    z = torch.randn(5, n * 4 * 3, dtype=torch.float64, requires_grad=True)
    m = torch.randn(n, 5, 3, dtype=torch.float64, requires_grad=True)

    def f(z, m):
        h, m_new, _ = torch.ops.gridlstm.lstm_gates(z, m, paper)
        return h, m_new

    assert torch.autograd.gradcheck(f, (z, m))


def test_gate_op_passes_torch_library_opcheck():
    """Schema, fake (meta) kernel and autograd registration as torch.library checks them."""
    z = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    m = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.gridlstm.lstm_gates.default, (z, m, True))


@pytest.mark.parametrize("form", ["standard", "paper"])
def test_gate_op_agrees_with_the_pytorch_arithmetic(form):
    torch.manual_seed(0)
    z = torch.randn(6, 7, 4 * 5, dtype=torch.float64) * 3
    m = torch.randn(6, 7, 5, dtype=torch.float64) * 2
    with dispatch.without("native"):
        expected = lstm_pointwise(z, m, NO_PEEPHOLES, False, form)
    got = functions.lstm_gates(z, m, form == "paper")
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
    # float32: exp within 20 units of the last place; bf16 pre-activations in float32.
    got32 = functions.lstm_gates(z.float(), m.float(), form == "paper")
    for g, e in zip(got32, expected, strict=True):
        torch.testing.assert_close(g, e.float(), rtol=1e-5, atol=1e-5)
    z16 = z.bfloat16()
    got16 = functions.lstm_gates(z16, m.float(), form == "paper")
    with dispatch.without("native"):
        expected16 = lstm_pointwise(z16.float(), m.float(), NO_PEEPHOLES, False, form)
    for g, e in zip(got16, expected16, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


@pytest.fixture
def native_runs(monkeypatch) -> list[str]:
    """Names of the native loops that ran."""
    ran: list[str] = []
    for name in ("NativeScan", "NativeScanPriority", "NativeHyperplaneSteps"):
        cls = getattr(functions, name)
        original = cls.apply

        def counting(*args, _name=name, _original=original):
            ran.append(_name)
            return _original(*args)

        monkeypatch.setattr(cls, "apply", counting)
    return ran


SCAN_CASES = {
    "plain": ({}, "NativeScan"),
    "paper-form": ({"output_form": "paper"}, "NativeScan"),
    "no-priority": ({"priority": []}, "NativeScan"),
    "time-priority": ({"priority": [0]}, "NativeScanPriority"),
    "time-priority-paper-tied": (
        {"priority": [0], "output_form": "paper", "tied": True},
        "NativeScanPriority",
    ),
    "time-priority-no-bias-dropout": (
        {"priority": [0], "bias": False, "dropout": 0.3},
        "NativeScanPriority",
    ),
}


def run_and_grads(net, x, state, lengths, seed=3):
    leaves = [x, *net.parameters(), *state]
    torch.manual_seed(seed)
    out, (h_n, c_n) = net(x, tuple(state), lengths=lengths)
    torch.manual_seed(1)
    got = [out, h_n, c_n]
    loss = sum((torch.randn_like(t) * t).sum() for t in got)
    return got, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", SCAN_CASES)
def test_scan_loops_agree_with_the_pytorch_loops(case, lengths, native_runs):
    """Outputs, final state and every gradient (input, given state, weights) to 1e-12 in
    float64, with padding (sequence lengths) and dropout between layers (same seed)."""
    options, loop = SCAN_CASES[case]
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 3, 1, backend="scan", batch_first=True, **options).double()
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    state = [torch.randn(3, 3, 4, dtype=torch.float64, requires_grad=True) for _ in "hm"]
    sizes = torch.tensor([6, 2, 5]) if lengths else None
    ours = run_and_grads(net, x, state, sizes)
    assert native_runs == [loop] * 3  # one per layer
    with dispatch.without("native"):
        theirs = run_and_grads(net, x, state, sizes)
    assert len(native_runs) == 3
    for a, b in zip([*ours[0], *ours[1]], [*theirs[0], *theirs[1]], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "options", [{"output_form": "paper"}, {"priority": [0]}], ids=["paper-form", "time-priority"]
)
def test_scan_loops_gradcheck(options, native_runs):
    torch.manual_seed(0)
    net = GridLSTM(2, 2, 2, 1, backend="scan", batch_first=True, **options).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())

    def f(x, *params):
        weights = dict(zip(names, params, strict=True))
        out, (h, c) = torch.func.functional_call(net, weights, (x,), {"lengths": lengths})
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, *params))
    assert native_runs


def test_the_switches_turn_the_native_path_off(monkeypatch, native_runs):
    cpu = torch.zeros(1)
    assert native.blocker(cpu) is None
    with dispatch.without("native"):
        assert native.blocker(cpu) is not None
    assert native.blocker(cpu) is None  # the context restores
    assert native.blocker(cpu.bfloat16()) is not None  # not covered: the PyTorch steps
    assert native.blocker(torch.zeros(1, device="meta")) is not None
    monkeypatch.setenv("GRIDLSTM_NATIVE", "0")
    assert native.blocker(cpu) is not None
    net = GridLSTM(3, 4, 2, 1, backend="scan", batch_first=True)
    net(torch.randn(2, 3, 3))
    assert native_runs == []


def fresh_load(monkeypatch, tmp_path) -> tuple[bool, list[str]]:
    """`build.load` as in a new process (the loaded library stays loaded here)."""
    monkeypatch.setattr(build, "_STATE", {})
    monkeypatch.setenv("GRIDLSTM_NATIVE_CACHE", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = build.load()
        second = build.load()  # warned once only
    assert first == second
    return first, [str(w.message) for w in caught]


def test_a_missing_compiler_falls_back_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    loaded, messages = fresh_load(monkeypatch, tmp_path)
    assert not loaded
    assert len(messages) == 1 and "\n" not in messages[0]
    assert "no C++ compiler ('no-such-compiler-here' is not on PATH" in messages[0]
    assert "GRIDLSTM_NATIVE=0" in messages[0]
    # The network still runs, on the PyTorch steps, with their results.
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 2, 2, backend="hyperplane").double()
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    assert native.blocker(x) is not None
    fallback = net(x)[0]
    monkeypatch.setattr(build, "_STATE", {"loaded": True})
    with dispatch.without("native"):
        torch.testing.assert_close(fallback, net(x)[0], rtol=0, atol=0)


def test_a_failed_build_falls_back_naming_the_error(monkeypatch, tmp_path):
    import torch.utils.cpp_extension as cpp_extension

    def broken(**kwargs):
        raise RuntimeError("Error building extension 'gridlstm_native'")

    monkeypatch.setattr(cpp_extension, "load", broken)
    loaded, messages = fresh_load(monkeypatch, tmp_path)
    assert not loaded and len(messages) == 1
    assert "its build failed in" in messages[0] and "Error building extension" in messages[0]


@pytest.mark.slow
def test_parallel_first_uses_build_once_and_the_portable_build_agrees(tmp_path):
    """Two processes starting at once on an empty cache: one builds, the other waits on the
    lock and loads the same library. Then the portable (no AVX2) build, forced with
    GRIDLSTM_NATIVE_ISA=default, computes what the PyTorch steps compute. About a minute (two
    compilations)."""
    script = (
        "import torch, sys\n"
        "from gridlstm.nn.kernels.native import build\n"
        "assert build.load(), build.build_info()\n"
        "from gridlstm.nn import GridLSTM\n"
        "from gridlstm.nn import dispatch\n"
        "torch.manual_seed(0)\n"
        "net = GridLSTM(3, 4, 2, 2, backend='hyperplane').double()\n"
        "x = torch.randn(2, 3, 2, 3, dtype=torch.float64)\n"
        "out = net(x)[0]\n"
        "with dispatch.without('native'):\n"
        "    torch.testing.assert_close(out, net(x)[0], rtol=1e-12, atol=1e-12)\n"
        "print(build.build_info()['path'])\n"
    )
    env = {**os.environ, "GRIDLSTM_NATIVE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, "AVX2"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    if build.capability() != "DEFAULT":
        portable = subprocess.run(
            [sys.executable, "-c", script, "DEFAULT"],
            env={**env, "GRIDLSTM_NATIVE_ISA": "default"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert portable.returncode == 0, portable.stderr
        assert "DEFAULT" in portable.stdout


@pytest.mark.parametrize("backend", ["hyperplane", "scan"])
def test_buffers_still_referenced_are_never_reused(backend):
    """The native ops take large buffers from a pool of their earlier ones that nothing
    references any more: outputs a caller still holds, and activations a pending backward
    still needs, must survive later calls of the same shapes."""
    torch.manual_seed(0)
    grid_dims = 2 if backend == "hyperplane" else 1
    net = GridLSTM(8, 64, 2, grid_dims, backend=backend, batch_first=True)
    shape = (32, 12, 12, 8) if grid_dims == 2 else (64, 40, 8)  # buffers above 1 MiB
    x1, x2 = torch.randn(shape), torch.randn(shape)
    expected_out = net(x1)[0]
    expected_grads = torch.autograd.grad(expected_out.square().sum(), list(net.parameters()))
    expected_out = expected_out.detach().clone()
    first = net(x1)[0]  # its graph (saved activations) stays pending
    for _ in range(2):  # same shapes again: the pool must skip first's buffers
        second = net(x2)[0]
        torch.autograd.grad(second.square().sum(), list(net.parameters()))
        del second
    torch.testing.assert_close(first, expected_out, rtol=1e-6, atol=1e-7)
    grads = torch.autograd.grad(first.square().sum(), list(net.parameters()))
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-7)


def test_the_build_command_reports_and_fails_when_switched_off(monkeypatch, capsys):
    from gridlstm.nn.kernels.native.__main__ import main

    assert main() == 0
    assert "native CPU steps (" in capsys.readouterr().out
    monkeypatch.setenv("GRIDLSTM_NATIVE", "off")
    assert main() == 1
    assert "switched off" in capsys.readouterr().out


@pytest.mark.parametrize("paper", [False, True], ids=["standard", "paper"])
def test_gate_op_double_backward(paper):
    """create_graph=True differentiates the gate op's backward (through the PyTorch
    arithmetic): second derivatives as gradgradcheck computes them numerically."""
    torch.manual_seed(0)
    z = torch.randn(4, 2 * 4 * 3, dtype=torch.float64, requires_grad=True)
    m = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)

    def f(z, m):
        h, m_new, _ = torch.ops.gridlstm.lstm_gates(z, m, paper)
        return h, m_new

    assert torch.autograd.gradgradcheck(f, (z, m))


@pytest.mark.parametrize("used", ["h", "m"])
def test_gate_op_gradients_when_one_output_is_unused(used):
    """Backward gets None for an unused output (no zero gradient is made for it, nor for
    the saved activations): first and second derivatives still match the arithmetic."""
    from gridlstm.nn.kernels.gates import lstm_reference

    torch.manual_seed(0)
    z = torch.randn(5, 16, dtype=torch.float64, requires_grad=True)
    m = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    pick = 0 if used == "h" else 1
    ours = functions.lstm_gates(z, m, False)[pick].pow(2).sum()
    reference = lstm_reference(z, m, (None, None, None), False, "standard")[pick].pow(2).sum()
    grads = torch.autograd.grad(ours, (z, m), create_graph=True)
    expected = torch.autograd.grad(reference, (z, m), create_graph=True)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)
    second = torch.autograd.grad(sum(g.sum() for g in grads), (z, m))
    second_expected = torch.autograd.grad(sum(g.sum() for g in expected), (z, m))
    for got, want in zip(second, second_expected, strict=True):
        torch.testing.assert_close(got, want)
    h, m_new = functions.lstm_gates(z, m, False)
    (h if used == "h" else m_new).sum().backward()  # the non-differentiable path
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_cpu_autocast_keeps_the_pytorch_steps(native_runs):
    """Under CPU autocast the GEMMs run in its dtype, which the native loops do not: the
    PyTorch steps run, also where the input itself stays float32 (no input projection)."""
    net = GridLSTM(8, 8, 2, 1, backend="scan", batch_first=True, project_input=False)
    x = torch.randn(2, 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)[0]
    assert native_runs == []
    assert not torch.isnan(out).any()


def test_the_pool_keeps_at_most_512_mib_and_64_buffers():
    """A run of ever-new shapes (translation's sentence lengths) must not pile up idle
    buffers: the pool drops its oldest free ones beyond 64 buffers or 512 MiB."""
    torch.manual_seed(0)
    net = GridLSTM(8, 64, 2, 2, backend="hyperplane")
    for width in range(4, 40):  # 36 shapes, each with buffers of a new size above 1 MiB
        net(torch.randn(32, 12, width, 8))[0].sum().backward()
    held, size, idle = torch.ops.gridlstm.pool_stats()
    assert 0 < held <= 64 and idle <= size <= 512 * 2**20


def test_an_unknown_switch_value_is_named_once_and_leaves_the_steps_on(monkeypatch):
    monkeypatch.setenv("GRIDLSTM_NATIVE", "maybe")
    monkeypatch.setattr(build, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match=r"GRIDLSTM_NATIVE='maybe' is not one of 0, false"):
        assert native.blocker(torch.zeros(1)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        assert native.blocker(torch.zeros(1)) is None


def test_the_cache_key_holds_the_torch_install_and_the_interpreter(monkeypatch):
    """Two environments with the same torch release build into different directories (their
    build files name different paths, so sharing one made each rebuild the other's)."""
    here = build.cache_dir("AVX2")
    monkeypatch.setattr(sys, "executable", "/some/other/venv/bin/python")
    assert build.cache_dir("AVX2") != here
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__file__", "/some/other/site-packages/torch/__init__.py")
    assert build.cache_dir("AVX2") != here


def test_the_cache_key_holds_the_compiler_command(monkeypatch):
    """CXX=c++ and CXX=g++ name one program on most machines but write two build commands:
    two directories, each built once (sharing one rebuilt the library at every switch)."""
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("CC", raising=False)
    here = build.cache_dir("AVX2")
    assert build.cache_dir("AVX2") == here  # stable
    monkeypatch.setenv("CXX", "g++")
    other = build.cache_dir("AVX2")
    assert other != here
    monkeypatch.setenv("CC", "gcc")
    assert build.cache_dir("AVX2") not in (here, other)


@pytest.mark.slow
def test_two_environments_that_differ_in_the_compiler_never_rebuild(tmp_path):
    """Four first uses in one cache, alternating CXX=c++ and CXX=g++: two builds, then each
    environment finds its own library (built: False). About a minute (two compilations)."""
    if shutil.which("g++") is None or shutil.which("c++") is None:
        pytest.skip("needs both c++ and g++ on PATH")
    script = (
        "from gridlstm.nn.kernels.native import build\n"
        "assert build.load(), build.build_info()\n"
        "print(build.build_info()['built'])\n"
    )
    built = []
    for compiler in ("c++", "g++", "c++", "g++"):
        env = {**os.environ, "GRIDLSTM_NATIVE_CACHE": str(tmp_path), "CXX": compiler}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-2000:]
        built.append(result.stdout.strip().splitlines()[-1])
    assert built == ["True", "True", "False", "False"]


def test_a_lock_left_by_a_killed_build_is_removed_under_our_lock(monkeypatch, tmp_path):
    """torch's own build lock, left behind when a build was killed, hangs torch releases
    before 2.7 forever: `load` removes it while holding its outer lock."""
    import torch.utils.cpp_extension as cpp_extension

    monkeypatch.setattr(build, "_STATE", {})
    monkeypatch.setenv("GRIDLSTM_NATIVE_CACHE", str(tmp_path))
    directory = build.cache_dir(build.capability())
    directory.mkdir(parents=True)
    (directory / "lock").write_text("")
    seen = []

    def fake_load(**kwargs):
        seen.append((directory / "lock").exists())
        raise RuntimeError("stop here")

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not build.load()
    assert seen == [False]


def pool_bytes() -> int:
    return int(torch.ops.gridlstm.pool_stats()[1])


@pytest.mark.parametrize("backend", ["hyperplane", "scan"])
def test_buffers_made_under_inference_mode_never_reach_training(backend):
    """An inference-mode forward, then a training step of the same shapes (what Lightning's
    ``validate`` then ``fit`` does): inference tensors cannot be saved for backward nor
    written outside inference mode, so the pool must never hand one to training."""
    torch.manual_seed(0)
    grid_dims = 2 if backend == "hyperplane" else 1
    net = GridLSTM(8, 64, 2, grid_dims, backend=backend, batch_first=True)
    shape = (32, 12, 12, 8) if grid_dims == 2 else (64, 40, 8)  # buffers above 1 MiB
    x = torch.randn(shape)
    native.release_buffers()
    expected = torch.autograd.grad(net(x)[0].square().sum(), list(net.parameters()))
    native.release_buffers()
    with torch.inference_mode():
        net(x)
        net(x)
    grads = torch.autograd.grad(net(x)[0].square().sum(), list(net.parameters()))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-7)


def test_the_pool_releases_idle_buffers_and_keeps_referenced_ones():
    torch.manual_seed(0)
    net = GridLSTM(8, 64, 2, 1, backend="scan", batch_first=True)
    with torch.no_grad():
        net(torch.randn(64, 40, 8))
    assert pool_bytes() > 0
    freed = native.release_buffers()
    assert freed > 0 and pool_bytes() == 0
    held = net(torch.randn(64, 40, 8))[0]  # still referenced: release keeps it
    native.release_buffers()
    assert pool_bytes() > 0
    del held


def test_the_native_ops_check_sizes_before_reading_memory():
    """Raw pointers are read only after TORCH_CHECKs on shapes and dtypes: a wrong call is
    an error naming the op, never a read out of bounds."""
    ops = torch.ops.gridlstm
    z, h0, w = torch.randn(3, 2, 16), torch.zeros(2, 4), torch.randn(4, 16)
    with pytest.raises(RuntimeError, match="scan_forward: the input half must be"):
        ops.scan_forward(torch.randn(3, 2, 12), h0, h0, w, None, False, True)
    with pytest.raises(RuntimeError, match="scan_forward: the weight must be"):
        ops.scan_forward(z, h0, h0, torch.randn(4, 12), None, False, True)
    with pytest.raises(RuntimeError, match="scan_forward: real must be"):
        ops.scan_forward(z, h0, h0, w, torch.ones(3, 2, 1), False, True)
    with pytest.raises(RuntimeError, match="scan_forward: every tensor in one dtype"):
        ops.scan_forward(z.double(), h0, h0, w, None, False, True)
    m = torch.zeros(1, 5, 4)
    with pytest.raises(RuntimeError, match="lstm_gates_backward: act must be"):
        ops.lstm_gates_backward(m, m, torch.zeros(5, 4), m, m, False)


def test_a_layout_with_indices_out_of_range_is_refused_once():
    """The native hyperplane loop gathers rows at the plan's indices without bounds checks:
    each layout is checked once, in Python, when it is built."""
    from gridlstm.nn.kernels import plans

    plan = plans.plan([2, 2], 2, False, [2], False)
    layout = plans.layout(plan, 1, [(0, 1), (2,)])
    assert plans.check_layout(layout) is layout
    bad = list(layout.index_h)
    bad[1] = bad[1].clone()
    bad[1][0] = layout.starts[-1] + layout.static_rows  # one past the buffer
    broken = plans.Layout(**{**layout.__dict__, "index_h": tuple(bad)})
    with pytest.raises(ValueError, match="step 1's h indices leave the buffer"):
        plans.check_layout(broken)

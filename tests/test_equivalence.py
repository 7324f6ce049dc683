"""The equivalence matrix: every (backend x step implementation) against the PyTorch reference
at the edges a user meets, not only on the happy path.

An implementation joins by registering a `Path` in `PATHS`: the backend, the options, the
`gridlstm.nn.dispatch` switches that select it, and the implementation that must be seen
running (`dispatch.explain`), so a path that silently stepped aside cannot pass vacuously.
The reference is the same network with the naive backend (one cell at a time) under
``dispatch.reference()`` (PyTorch gate arithmetic everywhere).

The rule checked: same outputs, final states, gradients and NaN pattern (float32: 1e-5
relative; float64: 1e-10), or the same error as the reference, raised before running. The
fused Triton steps run here through Triton's CPU interpreter (tiny shapes): in float32, and in
bfloat16 and float16 against the reference in the same dtype (the probe's 16-bit tolerance).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.block import lstm_pointwise
from gridlstm.nn.kernels import fused, native
from gridlstm.nn.kernels import lstm as lstm_kernel
from gridlstm.nn.kernels.gates import lstm_reference

HAS_NATIVE = native.build.load()
try:
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False


@dataclass(frozen=True)
class Path:
    """One implementation as a user reaches it."""

    name: str
    backend: str
    grid_dims: int
    options: dict = field(default_factory=dict)
    off: tuple[str, ...] = ()  # dispatch.without(*off)
    runs: str | None = None  # the implementation that must run (None: nothing to record)
    interpreted: bool = False  # the fused steps, through Triton's interpreter (float32)

    def context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if self.off:
            stack.enter_context(dispatch.without(*self.off))
        if self.interpreted:
            stack.enter_context(dispatch.interpreted())
        return stack

    def marks(self) -> list:
        if self.runs == "native" and not HAS_NATIVE:
            return [pytest.mark.skip(reason="the native library did not build here")]
        if self.interpreted and not HAS_TRITON:
            return [pytest.mark.skip(reason="Triton is not installed")]
        return []


PATHS: list[Path] = []


def register(path: Path) -> Path:
    PATHS.append(path)
    return path


register(Path("fast/native-depth", "fast", 1, runs="native"))  # CPU default: GEMM + native gates
register(Path("fast/kernel", "fast", 1, off=("native",)))  # the depth step in the kernel too
register(Path("scan/native", "scan", 1, runs="native"))
register(Path("scan/native/time-priority", "scan", 1, {"priority": "time"}, runs="native"))
register(Path("scan/native/depth-priority", "scan", 1, {"priority": "depth"}, runs="native"))
register(Path("scan/native/paper", "scan", 1, {"output_form": "paper"}, runs="native"))
register(Path("scan/pytorch", "scan", 1, off=("native",)))
register(Path("hyperplane/native", "hyperplane", 2, runs="native"))
register(Path("hyperplane/native/1-lstm", "hyperplane", 0, {"tied": True}, runs="native"))
register(Path("hyperplane/handwritten", "hyperplane", 2, off=("native",), runs="handwritten"))
# The per-op steps with the native gate op.
register(Path("hyperplane/per-op", "hyperplane", 2, off=("handwritten", "fused"), runs="native"))
register(Path("naive/native-gates", "naive", 1, runs="native"))
register(Path("hyperplane/fused", "hyperplane", 2, interpreted=True, runs="fused"))
register(Path("scan/fused", "scan", 1, {"output_form": "paper"}, interpreted=True, runs="fused"))


def precision(path: Path) -> torch.dtype:
    """float64, or float32 for the fused steps (their kernels run float32 and 16 bits)."""
    return torch.float32 if path.interpreted else torch.float64


def params(paths: list[Path]) -> list:
    return [pytest.param(p, id=p.name, marks=p.marks()) for p in paths]


def shape(path: Path, batch: int = 2) -> tuple[int, ...]:
    return {0: (batch, 3), 1: (batch, 4, 3), 2: (batch, 3, 2, 3)}[path.grid_dims]


def networks(path: Path, dtype: torch.dtype) -> tuple[GridLSTM, GridLSTM]:
    """The path's network and the reference (same weights, naive backend)."""
    torch.manual_seed(0)
    options = dict(path.options)
    net = GridLSTM(3, 4, 2, path.grid_dims, batch_first=True, backend=path.backend, **options)
    reference = GridLSTM(3, 4, 2, path.grid_dims, batch_first=True, backend="naive", **options)
    reference.load_state_dict(net.state_dict())
    return net.to(dtype), reference.to(dtype)


def tolerance(dtype: torch.dtype) -> dict:
    return (
        {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    )


def outputs(net: GridLSTM, x: Tensor, state=None) -> list[Tensor]:
    out, final = net(x, state)
    return [out, *([] if final is None else torch.utils._pytree.tree_leaves(final))]


def on_path(path: Path, fn):
    """``fn()`` on the path, checking that the path's implementation ran."""
    with path.context(), dispatch.explain() as record:
        result = fn()
    if path.runs is not None:
        ran = {implementation for _, implementation, reason in record if reason is None}
        assert path.runs in ran, f"{path.name}: {path.runs} did not run: {record}"
    return result


def on_reference(fn):
    with dispatch.reference():
        return fn()


def assert_same(got: list, expected: list, dtype: torch.dtype) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g.isnan(), e.isnan()), "NaN patterns differ"
        torch.testing.assert_close(g, e, equal_nan=True, **tolerance(dtype))


# ------------------------------------------------------------------ NaN and infinity

EDGES = [
    "input:nan",
    "input:+inf",
    "input:-inf",
    "weight:nan",
    "weight:+inf",
    "weight:-inf",
    "h0:nan",
    "m0:+inf",
    "m0:-inf",
]
VALUES = {"nan": float("nan"), "+inf": float("inf"), "-inf": -float("inf")}


def poisoned(path: Path, edge: str, net: GridLSTM, reference: GridLSTM):
    """The input and state with the edge value, and the weight (in both networks)."""
    where, value = edge.split(":")
    torch.manual_seed(1)
    x = torch.randn(shape(path))
    state = None
    if where == "input":
        x[0].view(-1)[0] = VALUES[value]  # batch row 0 only: row 1 must stay finite
    elif where == "weight":
        for model in (net, reference):
            with torch.no_grad():
                model.blocks[0].transforms[0].weight.view(-1)[5] = VALUES[value]
    else:
        h0, m0 = torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)
        (h0 if where == "h0" else m0)[0, 0, 1] = VALUES[value]
        state = (h0, m0)
    return x, state


EDGE_CASES = [
    pytest.param(p, edge, id=f"{p.name}-{edge}", marks=p.marks())
    for p in PATHS
    for edge in EDGES
    if p.grid_dims == 1 or edge.split(":")[0] in ("input", "weight")  # states: 2-LSTMs
]


@pytest.mark.parametrize(("path", "edge"), EDGE_CASES)
def test_nan_and_infinity_propagate_as_in_the_reference(path, edge):
    """float32 (where the native build's vectorised exp used to clamp NaN away)."""
    net, reference = networks(path, torch.float32)
    x, state = poisoned(path, edge, net, reference)
    with torch.no_grad():
        expected = on_reference(lambda: outputs(reference, x, state))
        got = on_path(path, lambda: outputs(net, x, state))
    if edge.endswith("nan"):
        assert expected[0].isnan().any()  # the edge reached the output
    assert_same(got, expected, torch.float32)


def test_the_native_gate_op_keeps_nan_and_infinity():
    """The op itself, every special value in every gate (float32 and float64)."""
    if not HAS_NATIVE:
        pytest.skip("the native library did not build here")
    for dtype in (torch.float32, torch.float64):
        specials = torch.tensor(
            [float("nan"), float("inf"), -float("inf"), 0.0, 100.0, -100.0], dtype=dtype
        )
        z = specials.repeat(36)[: 6 * 4 * 6].view(6, 4 * 6)
        m = specials.roll(1).repeat(6).view(6, 6)
        for form in ("standard", "paper"):
            expected = lstm_reference(z, m, (None,) * 3, False, form)
            with dispatch.explain() as record:
                got = lstm_pointwise(z, m, (None,) * 3, False, form)
            assert record[-1] == ("gates", "native", None)
            assert_same(list(got), list(expected), dtype)


# ------------------------------------------------------------------ autograd at the edges


@pytest.mark.parametrize("path", params(PATHS))
def test_an_inference_mode_forward_then_a_training_step(path):
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)

    def train(model: GridLSTM) -> list[Tensor]:
        out = outputs(model, x)
        return [out[0], *torch.autograd.grad(out[0].square().sum(), list(model.parameters()))]

    def inference_then_train() -> list[Tensor]:
        with torch.inference_mode():
            outputs(net, x)
        return train(net)

    assert_same(on_path(path, inference_then_train), on_reference(lambda: train(reference)), dtype)


def penalty_grads(model: GridLSTM, x: Tensor) -> list[Tensor]:
    """An input-gradient penalty's gradients (double backward; the initial memory, zeros,
    needs no gradient: only some of the gate op's inputs do)."""
    x = x.clone().requires_grad_()
    out = outputs(model, x)[0]
    (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    return list(torch.autograd.grad(gx.square().sum(), list(model.parameters())))


@pytest.mark.parametrize("path", params(PATHS))
def test_an_input_gradient_penalty(path):
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)
    assert_same(
        on_path(path, lambda: penalty_grads(net, x)),
        on_reference(lambda: penalty_grads(reference, x)),
        dtype,
    )


@pytest.mark.parametrize("frozen", ["half the weights", "every weight"])
@pytest.mark.parametrize("path", params(PATHS))
def test_frozen_weights_give_the_references_remaining_gradients(path, frozen):
    """Fine-tuning with the first half of the parameters frozen, and a saliency map (every
    weight frozen, the gradient with respect to the input): each step's autograd Function
    sees only some of its inputs needing a gradient and must still return the right ones."""
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)
    for model in (net, reference):
        weights = list(model.parameters())
        for p in weights if frozen == "every weight" else weights[: len(weights) // 2]:
            p.requires_grad_(False)

    def grads(model: GridLSTM) -> list[Tensor]:
        inp = x.clone().requires_grad_(frozen == "every weight")
        out = outputs(model, inp)[0]
        wanted = [p for p in model.parameters() if p.requires_grad]
        wanted += [inp] if inp.requires_grad else []
        return [out, *torch.autograd.grad(out.square().sum(), wanted)]

    assert_same(on_path(path, lambda: grads(net)), on_reference(lambda: grads(reference)), dtype)


def func_results(model: torch.nn.Module, x: Tensor, vmap: bool = True) -> list[Tensor]:
    """torch.func.grad (functional_call over the parameters), jacrev and vmap."""
    weights = dict(model.named_parameters())

    def loss(p: dict, inp: Tensor) -> Tensor:
        return torch.func.functional_call(model, p, (inp,))[0].square().sum()

    grads = torch.func.grad(loss)(weights, x)
    jac = torch.func.jacrev(lambda inp: model(inp)[0].sum(0))(x)
    if not vmap:
        return [*grads.values(), jac]
    mapped = torch.func.vmap(lambda inp: model(inp)[0])(x[None].expand(2, *x.shape))
    return [*grads.values(), jac, mapped]


@pytest.mark.parametrize("path", params(PATHS))
def test_torch_func_transforms(path, monkeypatch):
    """The fast steps step aside under torch.func (grad, jacrev, vmap). The fast backend runs
    nn.LSTM's kernel, which has no vmap rule: there vmap raises what nn.LSTM raises. The
    network's first call is inside the transform (the kernel call's probe, made once per
    device and dtype, then runs there too)."""
    monkeypatch.setattr(lstm_kernel, "_KERNEL_AGREES", {})
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)
    vmap = path.backend != "fast"
    expected = on_reference(lambda: func_results(reference, x, vmap))
    with path.context():
        got = func_results(net, x, vmap)
    assert_same(got, expected, dtype)
    if not vmap:
        lstm = torch.nn.LSTM(3, 4, batch_first=True).double()
        with pytest.raises(RuntimeError) as from_lstm:
            torch.func.vmap(lambda inp: lstm(inp)[0])(x[None].expand(2, *x.shape))
        with pytest.raises(RuntimeError) as from_net:
            torch.func.vmap(lambda inp: net(inp)[0])(x[None].expand(2, *x.shape))
        assert str(from_net.value) == str(from_lstm.value)


# ------------------------------------------------------------------ layouts and dtypes


@pytest.mark.parametrize("path", params([p for p in PATHS if p.grid_dims == 1]))
def test_non_contiguous_expanded_and_transposed_inputs_and_states(path):
    dtype = precision(path)
    net, reference = networks(path, dtype)
    torch.manual_seed(2)
    x = torch.randn(4, 2, 3, dtype=dtype).transpose(0, 1)  # (B, T, F), strided
    h0 = torch.randn(2, 1, 4, dtype=dtype).expand(2, 2, 4)  # one row for the batch
    c0 = torch.randn(2, 4, 2, dtype=dtype).transpose(1, 2)  # (L, B, d), transposed
    assert not (x.is_contiguous() or h0.is_contiguous() or c0.is_contiguous())

    def run(model: GridLSTM) -> list[Tensor]:
        out = outputs(model, x, (h0, c0))
        return [*out, *torch.autograd.grad(out[0].square().sum(), list(model.parameters()))]

    assert_same(on_path(path, lambda: run(net)), on_reference(lambda: run(reference)), dtype)


DTYPES = [
    (torch.float32, torch.float32),
    (torch.float64, torch.float32),
    (torch.float32, torch.float64),
    (torch.bfloat16, torch.float32),
    (torch.float32, torch.bfloat16),
    (torch.float64, torch.float64),
]


@pytest.mark.parametrize(("z_dtype", "m_dtype"), DTYPES)
def test_the_gate_arithmetic_promotes_dtypes_as_pytorch_does(z_dtype, m_dtype):
    """Mixed dtypes compute in the promoted dtype (the native op steps aside for them)."""
    torch.manual_seed(0)
    z, m = torch.randn(5, 16).to(z_dtype), torch.randn(5, 4).to(m_dtype)
    expected = lstm_reference(z, m, (None,) * 3, False, "standard")
    got = lstm_pointwise(z, m, (None,) * 3, False, "standard")
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype == torch.promote_types(z_dtype, m_dtype)
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_the_gate_op_contract_holds_for_non_contiguous_inputs():
    """torch.library.opcheck: fake kernel (shapes, strides, dtypes) against the real one and
    the autograd registration, with a permuted m and a transposed z."""
    if not HAS_NATIVE:
        pytest.skip("the native library did not build here")
    ops = torch.ops.gridlstm
    torch.manual_seed(0)
    m = torch.randn(5, 2, 4, dtype=torch.float64).permute(1, 0, 2)  # (n, M, d) strided
    z = torch.randn(2 * 16, 5, dtype=torch.float64).t()  # (M, n 4d), transposed
    for paper in (False, True):
        torch.library.opcheck(ops.lstm_gates, (z, m, paper))
        torch.library.opcheck(ops.lstm_gates, (z.requires_grad_(), m, paper))
        z = z.detach()


# ------------------------------------------------------------------ switches


def test_two_threads_keep_their_own_switches():
    """The switches are context-local: a thread under ``reference()`` and one without run
    at the same time, each with its own implementation."""
    if not HAS_NATIVE:
        pytest.skip("the native library did not build here")
    net = GridLSTM(3, 4, 2, 1, backend="scan", batch_first=True)
    x = torch.randn(2, 4, 3)
    barrier = threading.Barrier(2)
    seen: dict[str, set] = {}
    errors: list[BaseException] = []

    def work(name: str, reference: bool) -> None:
        try:
            context = dispatch.reference() if reference else contextlib.nullcontext()
            with context, dispatch.explain() as record:
                barrier.wait()  # both switched and inside before either runs
                for _ in range(20):
                    net(x)
                barrier.wait()  # both done before either leaves its switch
            seen[name] = {reason is None for choice, impl, reason in record if impl == "native"}
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=("ref", True)),
        threading.Thread(target=work, args=("fast", False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen == {"ref": {False}, "fast": {True}}


def test_the_environment_variable_and_the_old_switches(monkeypatch):
    if not HAS_NATIVE:
        pytest.skip("the native library did not build here")
    x = torch.randn(2, 4, 3)
    monkeypatch.setenv("GRIDLSTM_STEPS", "reference")
    assert native.blocker(x) is not None
    monkeypatch.setenv("GRIDLSTM_STEPS", "fast")
    assert native.blocker(x) is None
    monkeypatch.setenv("GRIDLSTM_STEPS", "sometimes")
    with pytest.warns(RuntimeWarning, match="not one of fast, reference"):
        assert native.blocker(x) is None
    monkeypatch.delenv("GRIDLSTM_STEPS")
    with dispatch.without("native"):
        assert native.blocker(x) is not None
    with dispatch.without("fused"):
        assert "switched off" in fused.blocker(x)
    with pytest.raises(ValueError, match="unknown step implementation"):
        dispatch.without("cuda")


@pytest.mark.parametrize(
    ("module", "name", "new"),
    [
        ("gridlstm.nn.kernels.native", "python_steps", "without('native')"),
        ("gridlstm.nn.kernels.fused", "pytorch_steps", "without('fused')"),
        ("gridlstm.nn.backends.hyperplane", "per_op_steps", "without('handwritten', 'fused')"),
        ("gridlstm.nn.backends.hyperplane.per_op", "per_op_steps", "without('handwritten', "),
    ],
)
def test_the_step_switches_removed_in_0_4_name_their_new_spelling(module, name, new):
    import importlib

    with pytest.raises(AttributeError) as caught:
        getattr(importlib.import_module(module), name)
    assert f"{module}.{name}() was removed in gridlstm 0.4: use" in str(caught.value)
    assert f"gridlstm.nn.dispatch.{new}" in str(caught.value)
    assert not hasattr(importlib.import_module(module), "no_such_switch")


# ------------------------------------------------------------------ Lightning


class _Regressor:
    """A LightningModule around a GridLSTM (built lazily: Lightning is imported only here)."""

    @staticmethod
    def make(backend: str, grid_dims: int):
        import lightning as L

        class Regressor(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = GridLSTM(8, 64, 2, grid_dims, backend=backend, batch_first=True)

            def loss(self, batch: tuple[Tensor]) -> Tensor:
                return self.net(batch[0])[0].square().mean()

            def training_step(self, batch: tuple[Tensor], _: int) -> Tensor:
                return self.loss(batch)

            def validation_step(self, batch: tuple[Tensor], _: int) -> None:
                self.log("val", self.loss(batch))

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.SGD(self.parameters(), lr=0.1)

        return Regressor()


@pytest.mark.skipif(not HAS_NATIVE, reason="the native library did not build here")
@pytest.mark.parametrize(
    ("backend", "shape"), [("scan", (64, 40, 8)), ("hyperplane", (32, 12, 12, 8))]
)
def test_lightning_validate_then_fit_trains_as_the_reference(backend, shape):
    """``trainer.validate(model)`` (inference mode) then ``trainer.fit(model)`` at shapes
    whose buffers the native steps pool (> 1 MiB): the fit runs and trains as the reference
    steps train."""
    from torch.utils.data import DataLoader, TensorDataset

    from tests.conftest import quiet_trainer

    grid_dims = len(shape) - 2
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x), batch_size=shape[0])
    trained = []
    for context in (contextlib.nullcontext(), dispatch.reference()):
        torch.manual_seed(0)
        model = _Regressor.make(backend, grid_dims)
        with context:
            trainer = quiet_trainer(max_steps=2, limit_val_batches=1)
            trainer.validate(model, data, verbose=False)
            trainer.fit(model, data, data)
        trained.append([p.detach().clone() for p in model.parameters()])
    for got, expected in zip(*trained, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("path", params(PATHS))
def test_a_batch_of_no_rows_gives_empty_outputs_as_nn_lstm_does(path):
    """Batch 0: empty output and state of the shapes a row would give, and a backward that
    runs (zero gradients), as nn.LSTM's; no implementation is asked to run 0 rows."""
    dtype = precision(path)
    net, _ = networks(path, dtype)
    with path.context():
        out = outputs(net, torch.randn(shape(path, batch=0), dtype=dtype))
        one = outputs(net, torch.randn(shape(path, batch=1), dtype=dtype))
    for empty, row in zip(out, one, strict=True):
        batch_at = 0 if empty is out[0] else 1  # states are (L, B, ...)
        expected = list(row.shape)
        expected[batch_at] = 0
        assert list(empty.shape) == expected and empty.dtype == row.dtype
    grads = torch.autograd.grad(out[0].sum(), list(net.parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)


@pytest.mark.parametrize("path", params([p for p in PATHS if p.grid_dims > 0]))
def test_a_grid_dimension_of_length_zero_is_nn_lstms_error(path):
    dtype = precision(path)
    net, _ = networks(path, dtype)
    empty = list(shape(path))
    empty[1] = 0
    with path.context(), pytest.raises(RuntimeError, match="Expected sequence length to be"):
        net(torch.randn(empty, dtype=dtype))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        torch.nn.LSTM(3, 4, batch_first=True)(torch.randn(2, 0, 3))


AUTOCAST_CASES = [
    (grid_dims, tied, backend)
    for grid_dims in (0, 1, 2)
    for tied in (False, True)
    for backend in ("auto", "hyperplane", "naive", *(("fast", "scan") if grid_dims == 1 else ()))
]


@pytest.mark.parametrize(("grid_dims", "tied", "backend"), AUTOCAST_CASES)
def test_cpu_autocast_runs_forward_and_backward_on_every_backend(grid_dims, tied, backend):
    """bfloat16 autocast on a CPU: every backend, the 1-LSTM included, computes the float32
    function within bfloat16's precision and differentiates it (issue 50 D3); output and
    state come back in bfloat16 on every backend, as nn.LSTM's do (D8)."""
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 2, grid_dims, batch_first=True, backend=backend, tied=tied)
    x = torch.randn({0: (2, 3), 1: (2, 4, 3), 2: (2, 3, 2, 3)}[grid_dims])
    reference = net(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = net(x)
    states = (
        [] if state is None else [t for part in (state if grid_dims > 1 else [state]) for t in part]
    )
    assert {out.dtype, *(t.dtype for t in states)} == {torch.bfloat16}
    try:  # nn.LSTM's own, where this CPU's oneDNN has a bfloat16 LSTM (AVX-512 BF16 CPUs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm_out, lstm_state = torch.nn.LSTM(3, 4, batch_first=True)(x.view(2, -1, 3))
    except RuntimeError as error:  # e.g. an AVX2-only CPU: oneDNN builds no such primitive
        assert "primitive descriptor for the LSTM" in str(error)
    else:
        assert {lstm_out.dtype, *(t.dtype for t in lstm_state)} == {torch.bfloat16}
    torch.testing.assert_close(out.float(), reference, atol=0.02, rtol=0.05)
    grads = torch.autograd.grad(out.float().square().sum(), list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("path", params(PATHS))
def test_an_inference_mode_forward_then_an_input_gradient_penalty(path):
    """What an inference-mode forward caches (index plans and layouts) serves a later
    double backward too (issue 50 D2)."""
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)

    def inference_then_penalty() -> list[Tensor]:
        with torch.inference_mode():
            outputs(net, x)
        return penalty_grads(net, x)

    assert_same(
        on_path(path, inference_then_penalty),
        on_reference(lambda: penalty_grads(reference, x)),
        dtype,
    )


# ------------------------------------------------------------------ the fused steps in 16 bits

HALF = [torch.bfloat16, torch.float16]
FUSED = [p for p in PATHS if p.interpreted]


def assert_same_16bit(got: list, expected: list, dtype: torch.dtype) -> None:
    """16 bits, where both sides round every stored value in their own order: the same dtype,
    NaN pattern and infinities; the finite entries within the fused probe's 16-bit tolerance
    (`fused.close_16bit`: 8 units in the last place of the tensor's largest entry)."""
    tolerance = fused.probe_tolerance(dtype, "highest")
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype == dtype
        assert torch.equal(g.isnan(), e.isnan()), "NaN patterns differ"
        infinite = e.isinf()
        assert torch.equal(g.isinf(), infinite) and torch.equal(g[infinite], e[infinite])
        finite = e.isfinite()
        if finite.any():
            assert fused.close_16bit(g[finite], e[finite], tolerance), (g, e)


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize(("path", "edge"), [c for c in EDGE_CASES if c.values[0].interpreted])
def test_16_bit_fused_steps_propagate_nan_and_infinity_as_the_reference(path, edge, dtype):
    """bfloat16 and float16, the GPU's training dtypes, through Triton's interpreter: the
    fused steps keep the reference's NaN and infinity pattern in 16 bits too."""
    net, reference = networks(path, dtype)
    x, state = poisoned(path, edge, net, reference)
    x = x.to(dtype)
    state = None if state is None else tuple(t.to(dtype) for t in state)
    with torch.no_grad():
        expected = on_reference(lambda: outputs(reference, x, state))
        got = on_path(path, lambda: outputs(net, x, state))
    if edge.endswith("nan"):
        assert expected[0].isnan().any()
    assert_same_16bit(got, expected, dtype)


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("path", params(FUSED))
def test_16_bit_fused_steps_after_an_inference_forward_train_and_take_a_penalty(path, dtype):
    """An inference-mode forward, then a training step's gradients and an input-gradient
    penalty's (double backward), in 16 bits against the reference in the same dtype."""
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path)).to(dtype)

    def train(model: GridLSTM) -> list[Tensor]:
        out = outputs(model, x)
        return [
            out[0],
            *torch.autograd.grad(out[0].float().square().sum(), list(model.parameters())),
        ]

    def inference_then_train_and_penalty() -> list[Tensor]:
        with torch.inference_mode():
            outputs(net, x)
        return train(net) + penalty_grads(net, x)

    expected = on_reference(lambda: train(reference) + penalty_grads(reference, x))
    assert_same_16bit(on_path(path, inference_then_train_and_penalty), expected, dtype)


# ------------------------------------------------------------------ forward-mode AD


def dual_outputs(model: torch.nn.Module, x: Tensor, tangent: Tensor) -> list[Tensor]:
    """Output and its tangent under forward-mode AD (dual tensors)."""
    with torch.autograd.forward_ad.dual_level():
        out = model(torch.autograd.forward_ad.make_dual(x, tangent))[0]
        primal, derivative = torch.autograd.forward_ad.unpack_dual(out)
    return [primal, derivative]


@pytest.mark.parametrize("path", params(PATHS))
def test_forward_mode_ad_gives_the_references_jvp(path):
    """Dual tensors: the native and fused steps have no jvp and step aside, so every path's
    tangent is the reference's Jacobian-vector product, computed there by reverse mode
    (issue 50 D4)."""
    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)
    tangent = torch.randn_like(x)
    expected = on_reference(
        lambda: list(torch.autograd.functional.jvp(lambda i: reference(i)[0], x, tangent))
    )
    with path.context():
        got = dual_outputs(net, x, tangent)
    assert_same(got, expected, dtype)


def test_forward_mode_ad_on_the_fast_kernel_fails_as_nn_lstm_does():
    """In float32 on a CPU the fast backend's time step is nn.LSTM's oneDNN kernel, which
    has no forward AD in PyTorch: the same error as nn.LSTM's, not one of ours."""
    net = GridLSTM(3, 4, 2, 1, batch_first=True, backend="fast")
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    with pytest.raises(NotImplementedError) as from_lstm:
        dual_outputs(lstm, x, torch.randn_like(x))
    with pytest.raises(NotImplementedError) as from_net:
        dual_outputs(net, x, torch.randn_like(x))
    assert str(from_net.value) == str(from_lstm.value)
    assert "forward AD" in str(from_net.value)


# ------------------------------------------------------------------ dispatch modes


@pytest.mark.parametrize("path", params(PATHS))
def test_fake_tensors_give_the_references_shapes_and_leave_no_fake_plan_behind(path):
    """Under FakeTensorMode (torch.export, shape propagation) every path runs: the native
    ops have no fake kernels and step aside, the hyperplane plans are made for the call only
    (reading an index's value is data-dependent there) and nothing fake is cached: a real
    call afterwards still matches the reference (issue 50 D5)."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    dtype = precision(path)
    net, reference = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)
    expected = on_reference(lambda: outputs(reference, x))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, path.context():
        fake = outputs(net, mode.from_tensor(x))
    assert all(isinstance(t, FakeTensor) for t in fake)
    assert [(t.shape, t.dtype) for t in fake] == [(t.shape, t.dtype) for t in expected]
    assert_same(on_path(path, lambda: outputs(net, x)), expected, dtype)


@pytest.mark.parametrize("path", params(PATHS))
def test_flop_counter_mode_counts_what_the_pytorch_steps_do(path):
    """FlopCounterMode sees the per-op steps on every path (the native ops have no FLOP
    formulas and step aside under a dispatch mode): forward + backward counts equal the
    path's own with the fast steps switched off (the native scan once counted 6.5k of 21.9k)."""
    from torch.utils.flop_counter import FlopCounterMode

    dtype = precision(path)
    net, _ = networks(path, dtype)
    x = torch.randn(shape(path), dtype=dtype)

    def count() -> int:
        with FlopCounterMode(display=False) as counter:
            net(x)[0].square().sum().backward()
        return counter.get_total_flops()

    with path.context():
        got = count()
    assert got > 0 and got == on_reference(count)

"""`gridlstm.nn.kernels.handwritten`: the hyperplane steps with a handwritten backward.

The reference matrix (tests/test_grid.py) checks it against the float64 reference over every
option; here: `gradcheck` with respect to the weights as well as the inputs, agreement with
the per-op steps on grids and options the matrix does not reach, when it is used and when
not, autocast and inference. Every test runs twice: on the native loop
(`gridlstm.nn.kernels.native`, where the library builds) and on the PyTorch one."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.backends import hyperplane
from gridlstm.nn.kernels import pytorch_steps
from gridlstm.nn.kernels.native import build


@pytest.fixture(autouse=True, params=["native", "python"])
def steps(request) -> str:
    """Which loop the handwritten steps run: the native one or the PyTorch one."""
    if request.param == "python":
        with dispatch.without("native"):
            yield "python"
        return
    if not build.load():
        pytest.skip(f"the native library did not build: {build.build_info()['reason']}")
    yield "native"


def gate_activations(shape: tuple[int, ...], steps: str, d: int) -> bool:
    """Whether a saved tensor of this shape holds gate activations: (dimensions, 4 gates,
    groups, r, B, d) on the PyTorch loop, (groups, rows, n * 5d) on the native one."""
    if steps == "python":
        return len(shape) == 6 and shape[1] == 4
    return len(shape) == 3 and shape[-1] % (5 * d) == 0


def outputs(net: GridLSTM, x: torch.Tensor, state=None) -> list[torch.Tensor]:
    out, final = net(x, state)
    if final is None:
        return [out]
    pairs = [final] if isinstance(final, tuple) else final
    return [out, *(t for pair in pairs for t in pair)]


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """Counts the runs of the handwritten steps (or the native loop, which computes the
    same function where it applies): the kernel layer's hyperplane steps, not the per-op."""
    from gridlstm.nn.kernels import ops

    count: list[int] = []
    original = ops.hyperplane_steps

    def counting(choice, *args, **kwargs):
        assert choice in ("handwritten", "native"), choice
        count.append(1)
        return original(choice, *args, **kwargs)

    monkeypatch.setattr(ops, "hyperplane_steps", counting)
    return count


@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [(2, {}), (1, {"priority": [0], "tied": True}), (2, {"priority": [0, "depth"]})],
    ids=["3lstm", "2lstm-tied-time-priority", "3lstm-two-priorities"],
)
def test_gradcheck_inputs_state_and_weights(grid_dims, options, calls):
    torch.manual_seed(0)
    net = GridLSTM(2, 2, 2, grid_dims, batch_first=True, backend="hyperplane", **options)
    net = net.double()
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    x = torch.randn(2, *([3, 2][:grid_dims]), 2, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        return tuple(outputs_of(dict(zip(names, params, strict=True)), x))

    def outputs_of(weights, x):
        out, final = functional_call(net, weights, (x,))
        pairs = [final] if isinstance(final, tuple) else final
        return [out, *(t for pair in pairs for t in pair)]

    assert torch.autograd.gradcheck(f, (x, *params))
    assert calls, "the handwritten steps did not run"


CASES = {
    "3lstm-depth-priority": (2, {}),
    "3lstm-no-priority": (2, {"priority": []}),
    "3lstm-tied": (2, {"tied": True}),
    "3lstm-grid-priority": (2, {"priority": [1]}),  # non-priority dims 0 and 2: not a slice
    "3lstm-tie-depth-lstm": (2, {"tie_depth_lstm": True}),
    "3lstm-share-dims-no-bias": (2, {"share_dims": True, "bias": False}),
    "3lstm-input-on-grid": (2, {"input_dims": [0, "depth"], "input_to_memory": True}),
    "4lstm": (3, {"output_dims": [0, 2, "depth"]}),
    "2lstm-time-priority": (1, {"priority": [0]}),
    "1lstm-untied": (0, {}),
}


@pytest.mark.parametrize("case", CASES)
def test_agrees_with_the_per_op_steps(case, calls):
    grid_dims, options = CASES[case]
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 3, grid_dims, backend="hyperplane", batch_first=True, **options)
    net = net.double()
    x = torch.randn(2, *([4, 3, 2][:grid_dims]), 3, dtype=torch.float64, requires_grad=True)
    state = None
    if grid_dims >= 2:  # a given boundary state, so its gradient is checked too
        sizes = [4, 3, 2][:grid_dims]
        shapes = [(3, 2, *sizes[:k], *sizes[k + 1 :], 4) for k in range(grid_dims)]
        state = [
            tuple(torch.randn(s, dtype=torch.float64, requires_grad=True) for _ in "hm")
            for s in shapes
        ]
    leaves = [x, *net.parameters(), *(t for pair in state or [] for t in pair)]
    results = []
    for per_op in (False, True):
        with dispatch.without("handwritten", "fused") if per_op else torch.enable_grad():
            got = outputs(net, x, state)
        torch.manual_seed(1)
        loss = sum((torch.randn_like(t) * t).sum() for t in got)
        results.append((got, torch.autograd.grad(loss, leaves)))
    assert len(calls) == 1  # the first run only
    (ours, our_grads), (theirs, their_grads) = results
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"peephole": True}, "peepholes"),
        ({"output_form": "paper"}, "paper output form"),
        ({"coupled": True}, "coupled"),
        ({"kinds": ["lstm", "lstm", "nonlstm"]}, "non-LSTM"),
        ({"compile": True}, "compile"),
    ],
)
def test_the_per_op_steps_run_where_it_does_not_apply(options, reason):
    net = GridLSTM(3, 4, 2, 2, backend="hyperplane", **options)
    stack = hyperplane.LayerStack(net.blocks)
    compiled = options.get("compile")
    cells = object() if compiled else hyperplane.step
    blocker = hyperplane.handwritten_blocker(stack, net.dropout, None, cells)
    assert blocker is not None and reason in blocker


def test_sequence_lengths_run_the_per_op_steps(calls):
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 2, 1, priority=[0], backend="hyperplane")
    net(torch.randn(5, 2, 3), lengths=torch.tensor([5, 3]))
    assert not calls


@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [(2, {}), (2, {"tied": True}), (1, {"priority": [0]}), (3, {"priority": []})],
    ids=["3lstm", "3lstm-tied", "2lstm-time-priority", "4lstm"],
)
def test_dropout_drops_what_the_per_op_steps_drop(grid_dims, options, calls):
    """Dropout on the depth h between layers: for one seed both paths drop the same units
    (the handwritten steps draw as nn.Dropout does), so outputs and gradients agree; the
    top outputs are not dropped, and in eval mode nothing is."""
    torch.manual_seed(0)
    net = GridLSTM(3, 4, 3, grid_dims, dropout=0.4, backend="hyperplane", **options).double()
    x = torch.randn(2, *([4, 3, 2][:grid_dims]), 3, dtype=torch.float64, requires_grad=True)
    if grid_dims == 1:
        x = x.transpose(0, 1)  # time-major
    leaves = [x, *net.parameters()]
    results = []
    for per_op in (False, True):
        torch.manual_seed(7)
        with dispatch.without("handwritten", "fused") if per_op else torch.enable_grad():
            got = outputs(net, x)
        torch.manual_seed(1)
        loss = sum((torch.randn_like(t) * t).sum() for t in got)
        results.append((got, torch.autograd.grad(loss, leaves)))
    assert len(calls) == 1
    (ours, our_grads), (theirs, their_grads) = results
    for a, b in zip([*ours, *our_grads], [*theirs, *their_grads], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.manual_seed(7)
    again = outputs(net, x)[0]
    torch.manual_seed(8)
    other = outputs(net, x)[0]
    torch.testing.assert_close(again, ours[0])  # the seed decides the units
    assert not torch.allclose(other, ours[0])
    net.eval()
    eval_out = outputs(net, x)[0]
    with dispatch.without("handwritten", "fused"):
        torch.testing.assert_close(eval_out, outputs(net, x)[0], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(eval_out, ours[0])


def test_gradcheck_with_dropout(calls):
    """With the random draws fixed by a seed per call, the dropped network's gradients are
    the numerical ones."""
    torch.manual_seed(0)
    net = GridLSTM(2, 2, 3, 2, dropout=0.5, backend="hyperplane").double()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x):
        torch.manual_seed(5)
        return net(x)[0]

    assert torch.autograd.gradcheck(f, (x,))
    assert calls


def packed_shapes(run) -> list[tuple[int, ...]]:
    """Shapes of the tensors autograd saved (through saved-tensor hooks) while ``run`` ran."""
    shapes: list[tuple[int, ...]] = []

    def pack(tensor):
        shapes.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return shapes


def test_inference_without_grad_matches_and_keeps_nothing_for_a_backward(calls, steps):
    torch.manual_seed(0)
    net = GridLSTM(3, 8, 2, 2, backend="hyperplane")
    x = torch.randn(2, 3, 4, 3)
    results = {}

    def run(grad: bool):
        with torch.set_grad_enabled(grad):
            results[grad] = net(x)

    assert packed_shapes(lambda: run(False)) == []
    assert not results[False][0].requires_grad
    kept = packed_shapes(lambda: run(True))
    torch.testing.assert_close(results[False][0], results[True][0])
    torch.testing.assert_close(results[False][1][1][1], results[True][1][1][1])
    assert len(calls) == 2
    # The activations only where a backward can follow: the gate activations go through
    # save_for_backward.
    assert any(gate_activations(shape, steps, 8) for shape in kept), kept


def test_saved_tensor_hooks_see_every_activation(calls, steps):
    """Activation offload and checkpointing work through saved-tensor hooks: a pack hook that
    moves every saved tensor away (here: a copy held elsewhere, the original overwritten)
    must leave the gradients as they were. Activations kept on ``ctx`` would bypass it."""
    torch.manual_seed(0)
    net = GridLSTM(3, 8, 2, 2, backend="hyperplane", dropout=0.3)
    x = torch.randn(2, 3, 4, 3)

    def gradients():
        torch.manual_seed(1)
        out, _ = net(x)
        return torch.autograd.grad(out.square().sum(), list(net.parameters()))

    expected = gradients()
    store: list[torch.Tensor] = []

    def pack(tensor):
        store.append(tensor.detach().clone())
        return len(store) - 1

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda key: store[key]):
        got = gradients()
    assert len(calls) == 2
    assert any(gate_activations(tuple(t.shape), steps, 8) for t in store)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_a_float64_network_under_autocast_keeps_float64(calls):
    """Autocast leaves float64 GEMMs alone (torch's rule): the handwritten steps too, as the
    per-op steps do."""
    torch.manual_seed(0)
    net = GridLSTM(5, 8, 2, 2, backend="hyperplane").double()
    x = torch.randn(3, 4, 3, 5, dtype=torch.float64)
    reference, _ = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = net(x)
    assert len(calls) == 2 and out.dtype == torch.float64
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)


def test_the_plan_cache_keeps_the_most_recently_used_shapes(monkeypatch):
    from gridlstm.nn.kernels import plans

    built: list[tuple[int, ...]] = []
    plan = plans.plan

    def counting(sizes, *args):
        built.append(tuple(sizes))
        return plan(sizes, *args)

    monkeypatch.setattr(plans, "plan", counting)
    net = GridLSTM(3, 4, 1, 2, backend="hyperplane")
    net.max_plans = 2
    for length in (2, 3, 2, 4, 2, 3):  # 3 was least recently used when 4 arrived
        net(torch.randn(1, length, 2, 3))
    assert [sizes[0] for sizes in built] == [2, 3, 4, 3]
    assert len(net._plans) == 2


def test_autocast_runs_the_gemms_in_its_dtype_and_the_rest_in_float32(calls, monkeypatch):
    """Under bf16 autocast the GEMMs see bf16 operands and the rest runs in float32: the
    output (returned in bf16, as nn.LSTM returns it) is within bf16 rounding of the float32
    run and closer to it than the per-op steps' output, and the gradients stay float32."""
    torch.manual_seed(0)
    net = GridLSTM(5, 8, 2, 2, backend="hyperplane")
    x = torch.randn(3, 4, 3, 5)
    seen: list[torch.dtype] = []
    bmm = torch.bmm

    def spy(a, b, *args, **kwargs):
        seen.append(a.dtype)
        return bmm(a, b, *args, **kwargs)

    def run(per_op: bool, autocast: bool):
        with (
            dispatch.without("handwritten", "fused") if per_op else torch.enable_grad(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
        ):
            out, final = net(x)
        loss = out.float().square().sum() + sum(t.float().sum() for p in final for t in p)
        return out, torch.autograd.grad(loss, list(net.parameters()))

    reference, reference_grads = run(per_op=False, autocast=False)
    monkeypatch.setattr(torch, "bmm", spy)
    out, grads = run(per_op=False, autocast=True)
    monkeypatch.setattr(torch, "bmm", bmm)
    assert seen and set(seen) == {torch.bfloat16}
    assert out.dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in grads)
    error = (out.float() - reference).abs().max()
    assert 0 < error < 1e-2  # bf16 GEMMs, not float32 ones
    per_op_out, _ = run(per_op=True, autocast=True)
    assert error < (per_op_out.float() - reference).abs().max()
    for g, r in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=5e-2, atol=5e-2 * r.abs().max().item())


def test_tanh_form():
    """The sigmoid form of tanh: within rounding of torch.tanh in float32/64 on a CPU; torch's
    own in 16-bit types, where the sigmoid form would lose the precision of values near 0."""
    x = torch.linspace(-12, 12, 10001, dtype=torch.float64)
    torch.testing.assert_close(pytorch_steps.tanh(x), torch.tanh(x), rtol=0, atol=1e-15)
    x32 = x.float()
    torch.testing.assert_close(pytorch_steps.tanh(x32), torch.tanh(x32), rtol=0, atol=2e-7)
    small = torch.tensor([1e-3, -2e-4], dtype=torch.bfloat16)
    assert torch.equal(pytorch_steps.tanh(small), torch.tanh(small))

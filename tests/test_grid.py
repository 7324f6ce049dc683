"""`GridLSTM`: every backend against the independent per-cell float64 reference
(tests/reference.py), outputs and gradients, over the options of docs/model.md, section 1."""

from __future__ import annotations

import contextlib
import re

import pytest
import torch

from gridlstm.nn import (
    GridLSTM,
    LSTMTransform,
    NonLSTMTransform,
    count_parameters,
    dispatch,
)
from gridlstm.nn.backends import fast as fast_backend
from gridlstm.nn.backends import scan as scan_backend
from gridlstm.nn.kernels import lstm as kernel
from tests.reference import reference_grid

IN, D, B, L = 5, 4, 3, 3
SIZES = {0: [], 1: [6], 2: [3, 2]}


def transforms_of(net: GridLSTM) -> list[list[dict]]:
    """The module's weights as plain equation parameters (shared tensors stay shared)."""
    layers = []
    for block in net.blocks:
        dims = []
        for t in block.transforms:
            if isinstance(t, NonLSTMTransform):
                dims.append(
                    {
                        "kind": "nonlstm",
                        "W": t.linear.weight,
                        "b": t.linear.bias,
                        "act": t.activation,
                    }
                )
            else:
                assert isinstance(t, LSTMTransform)
                dims.append(
                    {
                        "kind": "lstm",
                        "W": t.weight,
                        "b": t.bias,
                        "peep": t.peep if t.peephole else None,
                        "form": t.output_form,
                        "coupled": t.coupled,
                    }
                )
        layers.append(dims)
    return layers


def reference_forward(net: GridLSTM, x: torch.Tensor, boundary, valid=None):
    """The reference on the module's weights; input projections split per input dim."""
    h_x = net.input_proj(x).split(D, -1)
    m_x = net.memory_proj(x).split(D, -1) if net.memory_proj is not None else None
    inputs = {dim: (h_x[i], m_x[i] if m_x else None) for i, dim in enumerate(net.input_dims)}
    return reference_grid(
        inputs, transforms_of(net), net.priority, boundary, net.num_layers, net.output_dims, valid
    )


CASES = {
    "plain": {},
    "no-priority": {"priority": []},
    "time-priority": {"priority": [0]},
    "two-priorities": {"priority": ["depth", 0]},
    "tied": {"tied": True},
    "tie-depth-lstm": {"tie_depth_lstm": True},
    "share-dims": {"share_dims": True},
    "paper-form": {"output_form": "paper"},
    "nonlstm-depth-relu": {"kinds": "depth-nonlstm", "activation": "relu"},
    "peephole": {"peephole": True},
    "coupled-peephole": {"coupled": True, "peephole": True},
    "no-bias": {"bias": False},
    "input-to-memory": {"input_to_memory": True},
    "output-all-sides": {"output_dims": "all"},
    "input-on-grid-dim": {"input_dims": "grid+depth", "input_to_memory": True},
}


def build(grid_dims: int, case: str, seed: int = 0) -> GridLSTM:
    kwargs = dict(CASES[case])
    if grid_dims == 0:
        kwargs["priority"] = [p for p in kwargs.get("priority", ["depth"]) if p == "depth"]
    if kwargs.get("output_dims") == "all":
        kwargs["output_dims"] = [*range(grid_dims), "depth"]
    if kwargs.get("input_dims") == "grid+depth":
        kwargs["input_dims"] = [*range(grid_dims)][:1] + ["depth"]
    if kwargs.get("kinds") == "depth-nonlstm":
        kwargs["kinds"] = ["lstm"] * grid_dims + ["nonlstm"]
        if grid_dims == 0:
            kwargs["kinds"] = ["nonlstm"]
    torch.manual_seed(seed)
    return GridLSTM(IN, D, L, grid_dims, batch_first=True, **kwargs).double()


def random_state(grid_dims: int):
    sizes = SIZES[grid_dims]
    pairs = []
    for k in range(grid_dims):
        shape = (L, B, *sizes[:k], *sizes[k + 1 :], D)
        pairs.append(
            (
                torch.randn(shape, dtype=torch.float64, requires_grad=True),
                torch.randn(shape, dtype=torch.float64, requires_grad=True),
            )
        )
    return pairs


def flat_outputs(output, final) -> list[torch.Tensor]:
    if final is None:
        return [output]
    if isinstance(final, tuple):
        final = [final]
    return [output, *(t for pair in final for t in pair)]


def applicable_backends(net: GridLSTM) -> list[str]:
    """ "hyperplane/per-op": the hyperplane scheduler's per-op steps
    (`dispatch.without("handwritten", "fused")`), which it otherwise runs only where
    `gridlstm.nn.kernels.handwritten` does not apply; "/python": the PyTorch steps where the
    native ones would run (`dispatch.without("native")`)."""
    backends = ["naive", "hyperplane", "hyperplane/python", "hyperplane/per-op"]
    backends += ["scan", "scan/python"] if scan_backend.blocker(net) is None else []
    return backends + (["fast"] if fast_backend.blocker(net) is None else [])


def path(backend: str) -> contextlib.AbstractContextManager:
    """The steps an `applicable_backends` entry names."""
    if backend.endswith("/per-op"):
        return dispatch.without("handwritten", "fused")
    return dispatch.without("native") if backend.endswith("/python") else contextlib.nullcontext()


# A 1-LSTM has only the depth dimension: no time priority, nothing to share dims with.
MATRIX = [
    (k, case)
    for k in (0, 1, 2)
    for case in CASES
    if not (k == 0 and case in ("time-priority", "two-priorities", "share-dims"))
]


def reference_case(net: GridLSTM, grid_dims: int) -> tuple:
    """An input, a random incoming state, the float64 reference's outputs on them, random
    output weights and the reference's gradients of the weighted sum (w.r.t. input, state
    and parameters): what every backend is compared with."""
    torch.manual_seed(1)
    x = torch.randn(B, *SIZES[grid_dims], IN, dtype=torch.float64, requires_grad=True)
    state = random_state(grid_dims)
    ref_out, ref_final = reference_forward(net, x, state)
    reference = [ref_out, *(t for pair in ref_final for t in pair)]
    weights = [torch.randn_like(t) for t in reference]
    inputs = [x, *(t for pair in state for t in pair), *net.parameters()]
    ref_grads = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, reference, strict=True)), inputs
    )
    return x, state, reference, weights, ref_grads


@pytest.mark.parametrize(("grid_dims", "case"), MATRIX, ids=[f"K{k}-{c}" for k, c in MATRIX])
def test_every_backend_matches_the_reference(grid_dims, case):
    net = build(grid_dims, case)
    x, state, reference, weights, ref_grads = reference_case(net, grid_dims)
    inputs = [x, *(t for pair in state for t in pair), *net.parameters()]

    for backend in applicable_backends(net):
        net.backend = backend.split("/")[0]
        call_state = None if grid_dims == 0 else (state[0] if grid_dims == 1 else state)
        with path(backend):
            got = flat_outputs(*net(x, call_state))
        assert len(got) == len(reference)
        for g, r in zip(got, reference, strict=True):
            torch.testing.assert_close(g, r, msg=lambda m, b=backend: f"{b}: {m}")
        grads = torch.autograd.grad(
            sum((w * t).sum() for w, t in zip(weights, got, strict=True)), inputs
        )
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, msg=lambda m, b=backend: f"{b} grad: {m}")


def test_auto_backend_choice():
    assert build(1, "plain").backend == "fast"
    assert build(1, "no-priority").backend == "fast"
    assert build(1, "tied").backend == "fast"
    assert build(0, "tied").backend == "fast"
    assert build(0, "plain").backend == "hyperplane"
    for case in ("paper-form", "peephole", "coupled-peephole"):
        assert build(1, case).backend == "scan", case
    assert build(1, "time-priority").backend == "scan"  # measured faster there, untied
    tied = GridLSTM(IN, D, L, 1, priority=[0], tied=True)
    assert tied.backend == "hyperplane"  # measured faster there, tied
    assert build(1, "input-on-grid-dim").backend == "hyperplane"
    assert build(2, "plain").backend == "hyperplane"


def test_fast_path_is_torch_nn_lstm_with_copied_weights():
    """Layer 0's time dimension of a 2-LSTM is exactly nn.LSTM over the projected input."""
    net = build(1, "plain")
    x = torch.randn(B, 6, IN, dtype=torch.float64)
    _, (h_n, c_n) = net(x)
    lstm = torch.nn.LSTM(D, D, batch_first=True).double()
    time = net.blocks[0].transforms[0]
    with torch.no_grad():
        lstm.weight_hh_l0.copy_(time.weight[:, :D])
        lstm.weight_ih_l0.copy_(time.weight[:, D:])
        lstm.bias_ih_l0.copy_(time.bias)
        lstm.bias_hh_l0.zero_()
    _, (h_ref, c_ref) = lstm(net.input_proj(x))
    torch.testing.assert_close(h_n[:1], h_ref)
    torch.testing.assert_close(c_n[:1], c_ref)


def test_tied_one_lstm_is_nn_lstm_over_zero_input():
    net = build(0, "tied")
    x = torch.randn(B, IN, dtype=torch.float64)
    out, _ = net(x)
    lstm = torch.nn.LSTM(1, D, batch_first=True).double()
    t = net.blocks[0].transforms[0]
    with torch.no_grad():
        lstm.weight_hh_l0.copy_(t.weight)
        lstm.bias_ih_l0.copy_(t.bias)
        lstm.bias_hh_l0.zero_()
    h0 = net.input_proj(x)[None]
    seq, _ = lstm(torch.zeros(B, L, 1, dtype=torch.float64), (h0, torch.zeros_like(h0)))
    torch.testing.assert_close(out, seq[:, -1])


def test_gradcheck_on_tiny_shapes():
    for grid_dims, case in ((1, "plain"), (2, "plain"), (1, "peephole")):
        torch.manual_seed(0)
        net = GridLSTM(2, 2, 2, grid_dims, batch_first=True, **CASES[case]).double()
        x = torch.randn(1, *([2] * grid_dims), 2, dtype=torch.float64, requires_grad=True)
        for backend in (
            ("hyperplane", "fast") if fast_backend.blocker(net) is None else ("hyperplane",)
        ):
            net.backend = backend
            assert torch.autograd.gradcheck(lambda inp, net=net: net(inp)[0], (x,))


def test_the_three_tying_modes_differ_as_they_must():
    d, N = D, 2
    in_f = N * d
    lstm_t = 4 * d * in_f + 4 * d
    proj = IN * d + d
    untied, tied = build(1, "plain"), build(1, "tied")
    depth_tied, shared = build(1, "tie-depth-lstm"), build(1, "share-dims")
    assert count_parameters(untied) == proj + L * N * lstm_t
    assert count_parameters(tied) == proj + N * lstm_t  # (a) one block for all layers
    assert count_parameters(depth_tied) == proj + L * lstm_t + lstm_t  # (b) time per layer
    assert count_parameters(shared) == proj + L * lstm_t  # (c) one matrix per block
    # (a): every layer is the same block object; (b): only the depth transforms are shared.
    assert all(b is tied.blocks[0] for b in tied.blocks)
    assert all(b.transforms[1] is depth_tied.blocks[0].transforms[1] for b in depth_tied.blocks)
    assert depth_tied.blocks[1].transforms[0] is not depth_tied.blocks[0].transforms[0]
    # (c): within a block both dimensions use one transform, across layers they differ.
    assert shared.blocks[0].transforms[0] is shared.blocks[0].transforms[1]
    assert shared.blocks[1].transforms[0] is not shared.blocks[0].transforms[0]
    # Same weights copied into each mode's parameters give different functions.
    x = torch.randn(B, 6, IN, dtype=torch.float64)
    outs = [net(x)[0] for net in (untied, tied, depth_tied, shared)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(outs[i], outs[j])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"priority": [5]}, "priority entries must be one of 0, 'depth'; got 5"),
        ({"priority": ["width"]}, "priority entries must be one of 0, 'depth'; got 'width'"),
        ({"priority": ["depth", "depth"]}, "priority must list distinct dimensions"),
        ({"input_dims": []}, "input_dims must list distinct dimensions"),
        ({"output_dims": [2]}, "output_dims entries must be one of 0, 'depth'"),
        ({"backend": "fast", "input_dims": [0]}, "backend='fast' does not apply: input"),
        ({"kinds": ["lstm", "gru"]}, "kinds must be one of 'lstm', 'nonlstm'"),
        ({"kinds": ["lstm"]}, "kinds must name 2 dimensions"),
        ({"backend": "fast", "output_form": "paper"}, "backend='fast' does not apply"),
        ({"backend": "cuda"}, "backend must be one of"),
        ({"share_dims": True, "kinds": ["lstm", "nonlstm"]}, "share_dims=True needs"),
        ({"tied": True, "tie_depth_lstm": True}, "drop tie_depth_lstm"),
        ({"grid_dims": -1}, "grid_dims must be an integer >= 0"),
        ({"hidden_size": 0}, "hidden_size must be an integer >= 1"),
        ({"output_form": "fancy"}, "output_form must be one of 'standard', 'paper'"),
        ({"activation": "gelu"}, "activation must be one of"),
    ],
)
def test_inconsistent_options_raise_value_error(kwargs, message):
    args = {"input_size": IN, "hidden_size": D, "num_layers": L, "grid_dims": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        GridLSTM(**args)


def test_wrong_state_and_input_shapes_are_rejected():
    net = build(2, "plain")
    x = torch.randn(B, 3, 2, IN, dtype=torch.float64)
    with pytest.raises(ValueError, match="state h of grid dimension 0 must have shape"):
        net(x, [(torch.zeros(L, B, 3, D), torch.zeros(L, B, 3, D))] * 2)
    with pytest.raises(ValueError, match="input must be 4-D .*, or 3-D without the batch"):
        net(torch.randn(3, IN, dtype=torch.float64))
    with pytest.raises(ValueError, match="features = input_size"):
        net(torch.randn(B, 3, 2, IN + 1, dtype=torch.float64))


@pytest.mark.parametrize(
    ("batch_first", "layout"),
    [(False, "(time, batch, features), batch_first=False"), (True, "(batch, time, features)")],
)
def test_a_wrong_input_names_the_layout_the_user_chose(batch_first, layout):
    """As nn.LSTM users expect: the message describes their own layout, not another one."""
    net = GridLSTM(IN, D, 2, 1, batch_first=batch_first)
    with pytest.raises(ValueError, match=re.escape(f"input must be 3-D {layout}")):
        net(torch.randn(5, 2, IN + 1))


def test_flatten_parameters_exists_and_changes_nothing():
    """Code written for nn.LSTM calls it after loading or DataParallel."""
    torch.manual_seed(0)
    net = GridLSTM(IN, D, 2, 1, backend="fast")
    x = torch.randn(5, 2, IN)
    before = net(x)[0]
    state = {k: v.clone() for k, v in net.state_dict().items() if torch.is_tensor(v)}
    assert net.flatten_parameters() is None
    torch.testing.assert_close(net(x)[0], before, rtol=0, atol=0)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]) if torch.is_tensor(value) else key == "_extra_state"


@pytest.mark.parametrize(
    "case", ["plain", "no-priority", "peephole", "time-priority", "paper-form"]
)
def test_length_mask_matches_reference_and_separate_runs(case):
    net = build(1, case)
    torch.manual_seed(2)
    T = 6
    x = torch.randn(B, T, IN, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    valid = torch.arange(T)[None] < lengths[:, None]
    zeros = torch.zeros(L, B, D, dtype=torch.float64)
    ref_out, (ref_final,) = reference_forward(net, x, [(zeros, zeros)], valid)
    for backend in applicable_backends(net):
        net.backend = backend.split("/")[0]  # lengths: the per-op steps either way
        with path(backend):
            out, (h_n, c_n) = net(x, lengths=lengths)
        torch.testing.assert_close(out, ref_out)
        torch.testing.assert_close(h_n, ref_final[0])
        torch.testing.assert_close(c_n, ref_final[1])
        grad = torch.autograd.grad(out.sum() + h_n.sum(), x)[0]
        assert torch.all(grad[1, 2:] == 0)  # padding never influences anything
        # Row 1 alone, truncated to its length, gives the same output and final state.
        out_1, (h_1, c_1) = net(x[1:2, :2])
        torch.testing.assert_close(out[1:2, :2], out_1)
        torch.testing.assert_close(h_n[:, 1:2], h_1)


def test_lengths_are_checked():
    net = build(1, "plain")
    x = torch.randn(B, 6, IN, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lengths must hold one length in \[1, 6\]"):
        net(x, lengths=torch.tensor([7, 1, 1]))
    with pytest.raises(ValueError, match="grid_dims=1"):
        build(2, "plain")(torch.randn(B, 3, 2, IN, dtype=torch.float64), lengths=torch.tensor([1]))


def test_project_input_false_feeds_the_input_itself():
    torch.manual_seed(0)
    net = GridLSTM(D, D, L, 1, project_input=False, batch_first=True).double()
    x = torch.randn(B, 6, D, dtype=torch.float64)
    zeros = torch.zeros(L, B, D, dtype=torch.float64)
    out, _ = net(x)
    ref, _ = reference_grid(
        {1: (x, None)}, transforms_of(net), net.priority, [(zeros, zeros)], L, [1]
    )
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="project_input=False needs input_size"):
        GridLSTM(IN, D, L, 1, project_input=False)


# ---- no silent wrong math: option combinations either work exactly or say why not


def test_share_dims_with_tie_depth_lstm_is_refused_instead_of_dropping_the_tie():
    with pytest.raises(ValueError, match="no separate depth transform"):
        GridLSTM(5, 4, 3, 1, share_dims=True, tie_depth_lstm=True)


def test_assigning_a_backend_that_does_not_apply_is_refused():
    net = GridLSTM(
        5, 4, 3, 1, priority=[0, "depth"], batch_first=True, tied=True
    )  # time priority: no fast path
    assert net.backend == "hyperplane"
    with pytest.raises(ValueError, match="backend='fast' does not apply: time priority"):
        net.backend = "fast"
    assert net.backend == "hyperplane"  # unchanged
    with pytest.raises(ValueError, match="backend"):
        net.backend = "cudnn"
    net.backend = "scan"  # applies, only not auto's choice (tied)
    net.backend = "auto"  # re-picks
    assert net.backend == "hyperplane"
    three = GridLSTM(5, 4, 3, 2)
    with pytest.raises(ValueError, match="backend='scan' does not apply: the scan runs the 2-LSTM"):
        three.backend = "scan"


@pytest.mark.parametrize("mode", ["tied", "tie_depth_lstm"])
def test_a_per_layer_state_dict_cannot_be_loaded_into_a_tied_network(mode):
    torch.manual_seed(0)
    untied = GridLSTM(5, 4, 3, 1, batch_first=True)
    tied = GridLSTM(5, 4, 3, 1, batch_first=True, **{mode: True})
    assert set(untied.state_dict()) == set(tied.state_dict())  # every key "matches"
    before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in tied.state_dict().items()}
    with pytest.raises(RuntimeError, match="shares it across layers"):
        tied.load_state_dict(untied.state_dict())
    # the reverse is a valid initialisation: an untied network that computes the tied one
    x = torch.randn(2, 6, 5)
    tied.load_state_dict(before)
    untied.load_state_dict(tied.state_dict())
    torch.testing.assert_close(untied(x)[0], tied(x)[0], rtol=0, atol=0)
    # and a tied network's own state dict round-trips
    again = GridLSTM(5, 4, 3, 1, batch_first=True, **{mode: True})
    again.load_state_dict(tied.state_dict())
    torch.testing.assert_close(again(x)[0], tied(x)[0], rtol=0, atol=0)


# ---- torch.nn.LSTM conventions


@pytest.mark.parametrize("options", [{}, {"tied": True}, {"peephole": True, "coupled": True}])
def test_reset_parameters_restores_the_initialisation_and_keeps_ties(options):
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 3, 1, kinds=["nonlstm", "lstm"], batch_first=True, **options)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(7.0)
    net.reset_parameters()
    depth = net.blocks[0].transforms[1]
    forget = 0 if options.get("coupled") else 1  # gate order (i, f, g, o); coupled (f, g, o)
    expected = torch.zeros_like(depth.bias)
    expected[forget * 4 : (forget + 1) * 4] = 1.0  # forget_bias
    assert torch.equal(depth.bias.detach(), expected)
    assert all(p.abs().max() < 7.0 for p in net.parameters())
    assert all(p.abs().max() <= 1.0 for n, p in net.named_parameters() if "bias" not in n)
    if options.get("tied"):
        assert all(block is net.blocks[0] for block in net.blocks)


@pytest.mark.parametrize("backend", ["fast", "scan", "hyperplane", "naive"])
def test_time_major_by_default_as_nn_lstm(backend):
    """Without batch_first the 2-LSTM reads (T, B, F) and returns (T, B, d), as nn.LSTM does;
    the state is (L, B, d) either way."""
    torch.manual_seed(0)
    time_major = GridLSTM(5, 4, 2, 1, backend=backend).double()
    assert time_major.batch_first is False
    batch_major = GridLSTM(5, 4, 2, 1, backend=backend, batch_first=True).double()
    batch_major.load_state_dict(time_major.state_dict())
    x = torch.randn(3, 7, 5, dtype=torch.float64)  # (B=3, T=7, F)
    expected, (h, m) = batch_major(x)
    out, (h_t, m_t) = time_major(x.transpose(0, 1))
    assert out.shape == (7, 3, 4) and h_t.shape == (2, 3, 4)
    torch.testing.assert_close(out, expected.transpose(0, 1))
    torch.testing.assert_close((h_t, m_t), (h, m))


def test_device_and_dtype_factory_arguments():
    net = GridLSTM(5, 4, 2, 1, dtype=torch.float64, batch_first=True)
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    out, _ = net(torch.randn(2, 3, 5, dtype=torch.float64))
    assert out.dtype == torch.float64
    meta = GridLSTM(5, 4, 2, 1, device="meta", batch_first=True)
    assert {p.device.type for p in meta.parameters()} == {"meta"}


def test_fast_path_falls_back_with_a_warning_if_the_private_lstm_op_changes(monkeypatch):
    """Simulates a torch release where torch._VF.lstm's arguments mean something else: the
    once-per-dtype probe against nn.LSTM catches it and the network stays exact."""
    real = kernel.vf_lstm

    def changed(*args):  # e.g. the gate order of the weights reinterpreted
        output, h_n, c_n = real(*args)
        return -output, -h_n, c_n

    torch.manual_seed(0)
    net = GridLSTM(5, 4, 3, 1, batch_first=True).double()
    assert net.backend == "fast"
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    exact, _ = net(x)
    monkeypatch.setattr(kernel, "_KERNEL_AGREES", {})
    monkeypatch.setattr(kernel, "vf_lstm", changed)
    with pytest.warns(RuntimeWarning, match="not usable on cpu in torch.float64"):
        out, _ = net(x)
    torch.testing.assert_close(out, exact)  # computed by the scan backend instead
    monkeypatch.setattr(kernel, "vf_lstm", lambda *args: (_ for _ in ()).throw(TypeError("args")))
    kernel._KERNEL_AGREES.clear()
    with pytest.warns(RuntimeWarning, match="it raised TypeError"):
        out, _ = net(x)
    torch.testing.assert_close(out, exact)


def test_the_kernel_probe_passes_on_this_torch():
    from gridlstm.nn.kernels.lstm import kernel_agrees

    assert kernel_agrees(torch.device("cpu"), torch.float32)
    assert kernel_agrees(torch.device("cpu"), torch.float64)


@pytest.mark.parametrize(
    ("grid_dims", "shape", "batch_first"),
    [(0, (5,), True), (1, (6, 5), True), (1, (6, 5), False), (2, (3, 4, 5), True)],
)
def test_unbatched_input_gives_the_batch_of_one_result_unbatched(grid_dims, shape, batch_first):
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 2, grid_dims, batch_first=batch_first)
    x = torch.randn(*shape)
    at = 1 if grid_dims == 1 and not batch_first else 0
    batched, batched_state = net(x.unsqueeze(at))
    out, state = net(x)
    torch.testing.assert_close(out, batched.squeeze(at))
    if grid_dims == 1:  # (h, m) each (L, d), as nn.LSTM's unbatched (h_n, c_n)
        assert state[0].shape == (2, 4)
        torch.testing.assert_close(state[0], batched_state[0].squeeze(1))
        again, _ = net(x, state)  # an unbatched state carries on
        expected, _ = net(x.unsqueeze(at), batched_state)
        torch.testing.assert_close(again, expected.squeeze(at))
    with pytest.raises(ValueError, match="lengths needs batched input"):
        net(x, lengths=torch.tensor([2]))


@pytest.mark.parametrize("backend", ["fast", "scan", "hyperplane", "naive"])
@pytest.mark.parametrize("options", [{}, {"tied": True}, {"tie_depth_lstm": True}])
def test_state_dict_round_trip_on_every_backend(backend, options):
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 3, 1, backend=backend, batch_first=True, **options)
    copy = GridLSTM(5, 4, 3, 1, backend=backend, batch_first=True, **options)
    copy.load_state_dict(net.state_dict())
    x = torch.randn(2, 6, 5)
    torch.testing.assert_close(copy(x)[0], net(x)[0], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fast", "scan", "hyperplane", "naive"])
def test_torch_compile_matches_eager_on_every_backend(backend):
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 2, 1, backend=backend, batch_first=True)
    x = torch.randn(2, 4, 5)
    compiled = torch.compile(net)
    out, (h, m) = compiled(x)
    expected, (h_e, m_e) = net(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_e, rtol=1e-5, atol=1e-6)
    out.sum().backward()  # and it trains


@pytest.mark.parametrize(
    ("device", "dtype", "cudnn", "onednn", "expected"),
    [
        ("cuda", torch.bfloat16, 91900, False, torch.bfloat16),  # the H100 image: cuDNN 9.19
        ("cuda", torch.bfloat16, 91300, False, torch.bfloat16),
        ("cuda", torch.bfloat16, 90100, False, torch.float32),  # before cuDNN's bf16 RNNs
        ("cuda", torch.bfloat16, None, False, torch.float32),  # no cuDNN at all
        ("cuda", torch.float16, 80000, False, torch.float16),  # fp16 RNNs: every cuDNN
        ("cpu", torch.bfloat16, None, True, torch.bfloat16),
        ("cpu", torch.bfloat16, None, False, torch.float32),  # oneDNN without bf16 on this CPU
    ],
)
def test_the_kernel_dtype_under_autocast_follows_the_installed_library(
    device, dtype, cudnn, onednn, expected
):
    from gridlstm.nn.precision import kernel_dtype

    assert kernel_dtype(device, dtype, cudnn, onednn) == expected


def test_without_a_bf16_kernel_the_fast_path_runs_the_recurrence_in_float32(monkeypatch):
    """Simulates a CPU whose oneDNN has no bf16 LSTM: under bf16 autocast the kernel runs in
    float32 (no failure, no precision lost in the recurrence); with one, in bf16."""
    seen: list[torch.dtype] = []
    real = kernel.vf_lstm

    def recording(*args):
        seen.append(args[0].dtype)  # the kernel's input
        return real(*args)

    torch.manual_seed(0)
    net = GridLSTM(5, 8, 2, 1, batch_first=True)
    x = torch.randn(3, 7, 5)
    exact, _ = net(x)
    monkeypatch.setattr(kernel, "vf_lstm", recording)
    monkeypatch.setattr(kernel, "_KERNEL_AGREES", {})
    for supported, wanted in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda s=supported: s)
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = net(x)
        assert seen and set(seen) == {wanted}, (supported, seen)
        assert (out.float() - exact).abs().max() < 5e-2  # bf16 projections either way


def test_the_kernel_probe_leaves_the_global_rng_alone(monkeypatch):
    """A resumed run must draw the same random numbers as an uninterrupted one, whichever
    step triggers the once-per-process probe."""
    monkeypatch.setattr(kernel, "_KERNEL_AGREES", {})
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    assert kernel.kernel_agrees(torch.device("cpu"), torch.float32)
    assert torch.equal(torch.rand(4), expected)


def test_cudnn_weights_are_one_buffer_in_the_kernels_layout():
    """On CUDA the kernel gets w_ih, w_hh, b_ih, b_hh back to back from the start of one
    buffer (cuDNN's layout; otherwise it warns and compacts them on every call). Checked
    on CPU tensors: the layout, the values and that gradients reach the transform."""
    torch.manual_seed(0)
    weight = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(16, dtype=torch.float64, requires_grad=True)
    w_ih, w_hh = weight[:, 4:], weight[:, :4]
    packed = kernel.kernel_weights(w_ih, w_hh, bias, packed=True)
    assert [tuple(p.shape) for p in packed] == [(16, 4), (16, 4), (16,), (16,)]
    start = packed[0].data_ptr()
    assert packed[0].storage_offset() == 0
    offsets = [(p.data_ptr() - start) // p.element_size() for p in packed]
    assert offsets == [0, 64, 128, 144]
    assert all(p.is_contiguous() for p in packed)
    for got, expected in zip(packed, [w_ih, w_hh, bias, torch.zeros(16)], strict=True):
        torch.testing.assert_close(got, expected.to(got))
    probe = [torch.randn_like(p) for p in packed]
    loss = sum((q * p).sum() for q, p in zip(probe, packed, strict=True))
    grads = torch.autograd.grad(loss, [weight, bias])
    torch.testing.assert_close(grads[0], torch.cat([probe[1], probe[0]], dim=1))
    torch.testing.assert_close(grads[1], probe[2])
    unpacked = kernel.kernel_weights(w_ih, w_hh, None, packed=False)
    assert len(unpacked) == 2 and all(p.is_contiguous() for p in unpacked)


def test_the_fast_path_hands_cuda_a_packed_buffer(monkeypatch):
    """The CUDA branch of `lstm_kernel`, simulated on CPU tensors: the same result as the
    unpacked weights, with the kernel receiving one buffer."""
    torch.manual_seed(0)
    d = 4
    x = torch.randn(2, 5, d)
    h0, c0 = torch.randn(1, 2, d), torch.randn(1, 2, d)
    weight, bias = torch.randn(4 * d, 2 * d), torch.randn(4 * d)
    expected = kernel.lstm_kernel(x, h0, c0, weight[:, d:], weight[:, :d], bias)
    seen = []
    real_vf_lstm, real_packing = kernel.vf_lstm, kernel.kernel_weights

    def recording(*args):
        seen.append(args[2])
        return real_vf_lstm(*args)

    monkeypatch.setattr(kernel, "vf_lstm", recording)
    monkeypatch.setattr(kernel, "kernel_weights", lambda *a, packed: real_packing(*a, packed=True))
    got = kernel.lstm_kernel(x, h0, c0, weight[:, d:], weight[:, :d], bias)
    torch.testing.assert_close(got[0], expected[0])
    params = seen[0]
    assert len({p.untyped_storage().data_ptr() for p in params}) == 1


def test_a_state_dict_made_under_another_function_defining_option_is_refused():
    """A priority-none grid's weights loaded into a depth-priority grid reported "All keys
    matched" and computed another function; the options now travel in the state dict
    (``_extra_state``), a mismatch is one message naming the option, and a state dict from
    before (no options) still loads, strict."""
    none = GridLSTM(IN, D, 2, 1, tied=True, priority="none")
    depth = GridLSTM(IN, D, 2, 1, tied=True, priority="depth")
    with pytest.raises(RuntimeError, match=r"made with priority=\[\].*build the module"):
        depth.load_state_dict(none.state_dict())
    for key, other in (("output_form", "paper"), ("coupled", True)):
        changed = GridLSTM(IN, D, 2, 1, tied=True, priority="none", **{key: other})
        with pytest.raises(RuntimeError, match=f"made with {key}="):
            changed.load_state_dict(none.state_dict())
    old = {k: v for k, v in none.state_dict().items() if k != "_extra_state"}
    assert str(depth.load_state_dict(old, strict=True)) == "<All keys matched successfully>"
    # Into a module off the older default (depth priority), an option-less state dict loads
    # with a warning naming the option.
    with pytest.warns(
        UserWarning, match=r"carries no options.*priority=\[\] \(the older default: \[1\]\)"
    ):
        GridLSTM(IN, D, 2, 1, tied=True, priority="none").load_state_dict(old)
    again = GridLSTM(IN, D, 2, 1, tied=True, priority="none")
    again.load_state_dict(none.state_dict())
    x = torch.randn(5, 2, IN)
    torch.testing.assert_close(again(x)[0], none(x)[0], rtol=0, atol=0)


def test_the_library_2lstm_defaults_are_the_suites():
    """One default per idea: ``Grid2dLSTM(d, d, 8, tied=True)`` with its defaults is the
    network ``model=grid2d`` builds for addition (priority none, the embedding as the input
    projection), not the depth-priority grid docs/claims/deep_tied measured failing at depth
    8: the suite's weights load into it strict, options included, and compute the same."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from gridlstm.nn import Grid2dLSTM
    from gridlstm.run.hydra_runtime import register_resolvers
    from tests.conftest import CONF

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            [
                "task=addition",
                "model=grid2d",
                "model.net.hidden_size=16",
                "model.net.num_layers=8",
                "model.net.tied=true",
            ],
        )
    grid = instantiate(cfg.model.net)
    library = Grid2dLSTM(16, 16, 8, tied=True, batch_first=grid.batch_first)
    assert library.priority == grid.priority == []
    assert isinstance(library.input_proj, torch.nn.Identity)
    library.load_state_dict(grid.state_dict(), strict=True)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(library(x)[0], grid(x)[0], rtol=0, atol=0)
    # Where the input's width differs, the projection is there; priority names still work.
    assert isinstance(Grid2dLSTM(8, 16).input_proj, torch.nn.Linear)
    assert Grid2dLSTM(16, 16, priority="depth").priority == [1]
    assert GridLSTM(16, 16, grid_dims=2).priority == [2]  # K >= 2 keeps depth [ours]

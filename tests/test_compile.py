"""The ``compile`` option: compiled per-step functions compute what the eager ones compute."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.backends import compiled, hyperplane, scan
from gridlstm.nn.grid import compile_mode


def outputs_and_grads(net: GridLSTM, x: torch.Tensor, lengths=None) -> list[torch.Tensor]:
    out, final = net(x, lengths=lengths)
    pairs = [final] if isinstance(final, tuple) else list(final or [])
    flat = [out, *(t for pair in pairs for t in pair)]
    torch.manual_seed(5)
    loss = sum((torch.randn_like(t) * t).sum() for t in flat)
    grads = torch.autograd.grad(loss, [x, *net.parameters()])
    return [t.detach() for t in flat] + list(grads)


@pytest.mark.parametrize(
    ("option", "mode"),
    [(False, None), (None, None), (True, "default"), ("reduce-overhead", "reduce-overhead")],
)
def test_the_option_names_a_torch_compile_mode(option, mode):
    assert compile_mode(option) == mode


def test_an_unknown_mode_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="compile must be one of .*'max-autotune'; got 'fast'"):
        GridLSTM(3, 4, 2, 1, compile="fast")


def test_cuda_graphs_are_left_out_without_grad():
    """Under no_grad every step call would start a new CUDA-graph iteration and free the
    outputs the loop still holds, so evaluation runs the steps compiled without graphs."""
    assert compiled.mode_now("reduce-overhead") == "reduce-overhead"
    with torch.no_grad():
        assert compiled.mode_now("reduce-overhead") == "default"
        assert compiled.mode_now("max-autotune") == "max-autotune"
        assert compiled.compiled_step(hyperplane.step, "reduce-overhead") is compiled.compiled_step(
            hyperplane.step, "default"
        )
    assert compiled.mode_now(None) is None


def test_eager_networks_use_the_plain_step_functions():
    assert compiled.compiled_steps(scan.STEPS, None) is scan.STEPS
    assert compiled.compiled_step(hyperplane.step, None) is hyperplane.step
    one = compiled.compiled_step(hyperplane.step, "default")
    assert one is compiled.compiled_step(hyperplane.step, "default")


@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [
        pytest.param(1, {"backend": "scan", "output_form": "paper"}, id="scan-paper"),
        pytest.param(1, {"backend": "scan", "priority": [0], "peephole": True}, id="scan-time"),
        pytest.param(2, {"backend": "hyperplane", "tied": True, "priority": []}, id="3lstm-tied"),
        # Tracing the layer-batched (untied) hyperplane step takes 7-15 s.
        pytest.param(
            1, {"backend": "hyperplane", "lengths": True}, id="lengths", marks=pytest.mark.slow
        ),
        pytest.param(2, {"backend": "hyperplane"}, id="3lstm", marks=pytest.mark.slow),
    ],
)
def test_each_step_function_traces_as_one_graph_and_matches_eager(grid_dims, options, monkeypatch):
    """Dynamo only (backend="eager", fullgraph): a graph break would raise. Cheap enough for
    the default suite; the inductor-compiled equality is the slow test below."""
    options = dict(options)
    use_lengths = options.pop("lengths", False)
    traced = {}

    def dynamo(fn, mode):
        if fn not in traced:
            traced[fn] = torch.compile(fn, fullgraph=True, backend="eager")
        return traced[fn]

    torch.manual_seed(0)
    net = GridLSTM(3, 4, 2, grid_dims, batch_first=True, **options)
    shape = (2, 5, 3) if grid_dims == 1 else (2, 3, 4, 3)
    x = torch.randn(*shape, requires_grad=True)
    lengths = torch.tensor([5, 3]) if use_lengths else None
    # The compile option compiles the PyTorch per-op steps, bit for bit.
    with dispatch.without("handwritten", "fused"), dispatch.without("native"):
        expected = outputs_and_grads(net, x, lengths)

    monkeypatch.setattr(compiled, "compiled", dynamo)
    net.compile_mode = "default"
    with dispatch.without("native"):  # the parts outside the compiled steps as in ``expected``
        got = outputs_and_grads(net, x, lengths)
    assert traced, "no step function went through torch.compile"
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [
        (1, {"backend": "scan", "priority": [0], "output_form": "paper"}),
        (2, {"backend": "hyperplane"}),
    ],
    ids=["scan-time-priority-paper", "3lstm"],
)
def test_inductor_compiled_steps_match_eager_and_do_not_recompile_per_length(grid_dims, options):
    torch.manual_seed(0)
    eager = GridLSTM(3, 8, 2, grid_dims, batch_first=True, **options)
    net = GridLSTM(3, 8, 2, grid_dims, batch_first=True, compile=True, **options)
    net.load_state_dict(eager.state_dict())
    frames = []
    for sizes in ([7], [9]) if grid_dims == 1 else ([3, 4], [4, 5]):
        x = torch.randn(4, *sizes, 3, requires_grad=True)
        for g, e in zip(outputs_and_grads(net, x), outputs_and_grads(eager, x), strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
        frames.append(counters["frames"]["ok"])
    assert frames[1] == frames[0], "a new length or grid size recompiled the step"

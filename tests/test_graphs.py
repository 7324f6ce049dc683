"""`gridlstm.nn.graphs` and ``hardware.cuda_graphs``: which calls record or replay a graph,
the state's round trip through the tensors-only graphed callable, and the refusals.

Recording needs a GPU: here `torch.cuda.make_graphed_callables` is replaced by a stand-in
that returns the callable it is given (and counts), and the dispatcher is pointed at the CPU,
so everything around the capture runs for real. The capture itself is tested in
tests/test_gpu.py (graphed and eager runs agree, outputs and gradients)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from gridlstm.nn import GridLSTM, graphs
from gridlstm.run.cuda_graphs import apply as apply_cuda_graphs
from gridlstm.run.errors import ConfigError


@pytest.fixture
def recorded(monkeypatch) -> list[tuple]:
    """Shapes of the sample inputs of every (simulated) recording."""
    shapes: list[tuple] = []

    def record(module, samples):
        shapes.append(tuple(tuple(t.shape) for t in samples))
        module(*samples)  # make_graphed_callables' warm-up runs the module too
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", record)
    return shapes


def on_cpu(net: GridLSTM, max_shapes: int = graphs.MAX_SHAPES) -> graphs.Graphed:
    dispatcher = graphs.graphed(net, max_shapes)
    dispatcher.device_type = "cpu"
    return dispatcher


@pytest.mark.parametrize(("grid_dims", "shape"), [(0, (3, 5)), (1, (6, 3, 5)), (2, (3, 4, 2, 5))])
def test_graphed_forward_gives_the_eager_results_with_and_without_a_state(
    grid_dims, shape, recorded
):
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 2, grid_dims)
    x = torch.randn(*shape)
    eager_out, eager_final = net(x)
    expected = torch.autograd.grad(eager_out.sum(), list(net.parameters()))
    on_cpu(net)
    out, final = net(x)
    torch.testing.assert_close(out, eager_out)
    grads = torch.autograd.grad(out.sum(), list(net.parameters()))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e)
    assert type(final) is type(eager_final)
    if grid_dims:  # the final state comes back in its structure, and can be passed back in
        flat = torch.utils._pytree.tree_leaves(final)
        for a, b in zip(flat, torch.utils._pytree.tree_leaves(eager_final), strict=True):
            torch.testing.assert_close(a, b)
        out2, _ = net(x, final)
        eager2, _ = type(net).forward(net, x, eager_final)
        torch.testing.assert_close(out2, eager2)
        assert len(recorded) == 2  # without and with a state: two signatures
    else:
        assert final is None and len(recorded) == 1


def test_one_recording_per_shape_and_eager_where_graphs_cannot_help(recorded, caplog):
    net = GridLSTM(5, 4, 2, 1)
    dispatcher = on_cpu(net, max_shapes=2)
    x = torch.randn(6, 3, 5)
    net(x)
    net(x)
    assert len(recorded) == 1  # replayed
    net(torch.randn(7, 3, 5))
    assert len(recorded) == 2
    with torch.no_grad():
        net(torch.randn(8, 3, 5))
    net.eval()
    net(torch.randn(8, 3, 5))
    net.train()
    net(x, lengths=torch.tensor([6, 5, 4]))
    assert len(recorded) == 2  # no gradients, evaluation, lengths: eager
    assert dispatcher.eager_reason(x, None) is None
    with caplog.at_level(logging.WARNING, logger="gridlstm.nn.graphs"):
        net(torch.randn(9, 3, 5))
        net(torch.randn(10, 3, 5))
    assert len(recorded) == 2  # past max_shapes: eager, said once
    assert sum("more than 2 input shapes" in r.message for r in caplog.records) == 1


def test_graphing_leaves_the_state_dict_and_a_cuda_network_alone(recorded):
    net = GridLSTM(5, 4, 2, 1)
    before = {k: v.clone() if torch.is_tensor(v) else v for k, v in net.state_dict().items()}
    dispatcher = graphs.graphed(net)  # device_type stays "cuda": CPU input runs eagerly
    net(torch.randn(6, 3, 5))
    assert not recorded
    assert dispatcher.eager_reason(torch.randn(2, 2, 5), None) == "not on a CUDA device"
    assert net.state_dict().keys() == before.keys()
    after = net.state_dict()
    assert all(
        torch.equal(after[k], v) if torch.is_tensor(v) else after[k] == v for k, v in before.items()
    )


def config(task: str = "addition", model: str = "grid2d", on: bool = True):
    return OmegaConf.create(
        {"hardware": {"cuda_graphs": on}, "task": {"name": task}, "model": {"name": model}}
    )


def test_apply_cuda_graphs_switches_every_gridlstm_and_refuses_what_it_cannot_graph():
    module = torch.nn.ModuleDict({"a": GridLSTM(5, 4, 1, 1), "b": GridLSTM(5, 4, 1, 2)})
    plain = SimpleNamespace()
    assert apply_cuda_graphs(config(on=False), module, plain) == 0
    assert apply_cuda_graphs(config(), module, plain) == 2
    assert all(isinstance(m.forward, graphs.Graphed) for m in module.values())
    varying = SimpleNamespace(shapes_vary="sentence pairs are batched by length")
    with pytest.raises(ConfigError, match="needs fixed batch shapes, but task=translation"):
        apply_cuda_graphs(config("translation"), module, varying)
    with pytest.raises(ConfigError, match="model=stacked_lstm has none"):
        apply_cuda_graphs(config(model="stacked_lstm"), torch.nn.LSTM(3, 4), plain)


def test_a_network_that_cannot_be_recorded_runs_eagerly_with_one_warning(monkeypatch, caplog):
    def refuse(module, samples):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", refuse)
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 2, 1)
    x = torch.randn(6, 3, 5)
    expected, _ = type(net).forward(net, x)
    dispatcher = on_cpu(net)
    with caplog.at_level(logging.WARNING, logger="gridlstm.nn.graphs"):
        first, _ = net(x)
        second, _ = net(torch.randn(7, 3, 5))
    torch.testing.assert_close(first, expected)
    assert second.shape[0] == 7
    warnings = [r.message for r in caplog.records if "cannot be recorded" in r.message]
    assert len(warnings) == 1 and "stream is capturing" in warnings[0], warnings
    assert dispatcher.eager_reason(x, None).startswith("recording failed (RuntimeError")


@pytest.mark.parametrize(
    ("option", "hardware", "message"),
    [
        ("maybe", {}, "hardware.cuda_graphs=maybe: give true or false"),
        (True, {"accelerator": "cpu"}, "it needs a GPU (hardware=gpu), got accelerator=cpu"),
        (True, {"precision": "bf16-mixed"}, "cannot record under autocast (precision=bf16-mixed)"),
        (True, {"precision": "16-mixed"}, "use hardware.precision=32-true, bf16-true or 16-true"),
        (True, {"devices": 2}, "runs on one GPU (devices=1, no DDP strategy); got devices=2"),
        (True, {"strategy": {"_target_": "x"}}, "runs on one GPU"),
        (True, {"accumulate": 2}, "with trainer.accumulate_grad_batches=2: graphed backwards"),
    ],
)
def test_the_option_is_checked_with_the_hardware(option, hardware, message):
    from gridlstm.run import cuda_graphs

    hardware = {"accelerator": "gpu", "devices": 1, "precision": "32-true", **hardware}
    accumulate = hardware.pop("accumulate", 1)
    with pytest.raises(ConfigError, match=re.escape(message)):
        cuda_graphs.check(option, hardware["accelerator"], hardware, accumulate)
    cuda_graphs.check(False, "cpu", {})  # off: nothing to check
    cuda_graphs.check(True, "gpu", {"devices": 1, "precision": "bf16-true"})


def test_a_graph_never_replays_onto_moved_or_replaced_parameters(recorded):
    """A graph replays fixed addresses: new parameter storage (``.to(device)``, a replaced
    parameter) or an input on another device records again instead of replaying."""
    torch.manual_seed(0)
    net = GridLSTM(5, 4, 2, 1)
    on_cpu(net)
    x = torch.randn(6, 3, 5)
    net(x)
    net(x)
    assert len(recorded) == 1
    net.to(torch.float64).to(torch.float32)  # same Parameter objects, new storage
    out, _ = net(x)
    assert len(recorded) == 2
    torch.testing.assert_close(out, type(net).forward(net, x)[0])
    with torch.no_grad():
        net.input_proj.weight = torch.nn.Parameter(net.input_proj.weight * 2)
    out, _ = net(x)
    assert len(recorded) == 3
    torch.testing.assert_close(out, type(net).forward(net, x)[0])

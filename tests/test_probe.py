"""The depth probe (`gridlstm.nn.probe`, ``callbacks=depth_probe``): its per-layer values
agree with the network computed layer by layer, its gates with a hand computation, and it
leaves the network as it found it."""

from __future__ import annotations

import csv

import pytest
import torch

from gridlstm.nn import Grid2dLSTM
from gridlstm.nn.probe import probe_depth

KINDS = {"tied": {"tied": True}, "untied": {"tied": False}, "depth_tied": {"tie_depth_lstm": True}}


def make(layers: int, **options) -> Grid2dLSTM:
    torch.manual_seed(0)
    options = {"tied": False, **options}
    return Grid2dLSTM(6, 6, layers, batch_first=True, **options)


def truncated(net: Grid2dLSTM, layers: int) -> Grid2dLSTM:
    """The same network cut after ``layers`` layers: its output is layer ``layers``'s."""
    options = {"tie_depth_lstm": net.tie_depth_lstm, "tied": net.tied}
    short = make(layers, **options)
    kept = {
        key: value
        for key, value in net.state_dict().items()
        if not key.startswith("blocks.") or int(key.split(".")[1]) < layers
    }
    short.load_state_dict(kept)
    return short


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_per_layer_values_are_those_of_the_network_cut_at_each_layer(kind):
    net, x = make(3, **KINDS[kind]), torch.randn(4, 5, 6)
    stats = probe_depth(net, lambda: net(x)[0].pow(2).sum())
    assert all(len(values) == 3 for key, values in stats.items() if key != "input_h_norm")
    for layers in (1, 2, 3):
        out = truncated(net, layers)(x)[0]
        expected = out.norm(dim=-1).mean().item()
        assert stats["depth_h_norm"][layers - 1] == pytest.approx(expected, rel=1e-5)
    top = x.clone()
    output = net(top)[0].detach().requires_grad_()
    (grad,) = torch.autograd.grad(output.pow(2).sum(), output)
    assert stats["depth_grad_norm"][-1] == pytest.approx(grad.norm(dim=-1).mean().item(), rel=1e-5)
    entering = net.input_proj(x).norm(dim=-1).mean().item()  # the input's projection
    assert stats["input_h_norm"] == [pytest.approx(entering, rel=1e-5)]


def test_gates_are_the_sigmoid_of_the_preactivations():
    net = make(2, tied=True, forget_bias=2.0)
    with torch.no_grad():
        net.blocks[0].transforms[0].weight.zero_()  # time transform: gates = sigmoid(bias)
    stats = probe_depth(net, lambda: net(torch.randn(3, 4, 6))[0].sum())
    assert stats["time_forget_gate"] == pytest.approx([torch.sigmoid(torch.tensor(2.0)).item()] * 2)
    assert stats["time_input_gate"] == pytest.approx([0.5, 0.5])
    assert stats["time_output_gate"] == pytest.approx([0.5, 0.5])
    assert stats["depth_forget_gate"] != pytest.approx(stats["time_forget_gate"])


def test_the_probe_leaves_backend_gradients_and_hooks_as_they_were():
    net = make(2, tied=True)
    backend = net.backend
    probe_depth(net, lambda: net(torch.randn(2, 3, 6))[0].sum())
    assert net.backend == backend
    assert all(p.grad is None for p in net.parameters())
    assert not net.blocks[0]._forward_hooks and not net.blocks[0]._forward_pre_hooks


def test_the_probe_refuses_what_is_not_a_2_lstm():
    from gridlstm.nn import GridLSTM

    with pytest.raises(ValueError, match="probe_depth measures 2-LSTMs"):
        probe_depth(GridLSTM(3, 4, 2, grid_dims=0), lambda: torch.zeros(()))


def test_a_run_with_the_probe_writes_every_layer_at_each_probed_step(tmp_path):
    from gridlstm.run.training import train
    from tests.conftest import TINY
    from tests.test_configs import compose_train

    overrides = [
        *TINY,
        "model.net.num_layers=3",
        "callbacks=depth_probe",
        "callbacks.depth_probe.every_n_steps=3",
        "logger=csv",
        "print_config=false",
    ]
    train(compose_train(overrides, tmp_path))
    with (tmp_path / "probe.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["step"] for row in rows} == {"0", "3"}
    grads = [r for r in rows if r["stat"] == "depth_grad_norm" and r["step"] == "0"]
    assert [r["layer"] for r in grads] == ["1", "2", "3"]
    assert all(float(r["value"]) > 0 for r in grads)
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "probe/depth_grad_norm/layer3" in header


def write_probe(folder, rows) -> None:
    folder.mkdir(parents=True)
    with (folder / "probe.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "stat", "layer", "value"])
        writer.writerows(rows)


def test_the_figure_reads_every_layer_of_each_step_and_refuses_other_files(tmp_path):
    from gridlstm.analysis.probe_figure import ProbeError, plot, read_probe

    rows = [
        (s, stat, layer, s + layer / 10)
        for s in (0, 5)
        for stat in ("depth_h_norm", "depth_grad_norm")
        for layer in (2, 1, 3)
    ]
    write_probe(tmp_path / "run", rows)
    probe = read_probe(tmp_path / "run")
    assert sorted(probe) == [0, 5]
    assert probe[5]["depth_h_norm"] == [5.1, 5.2, 5.3]  # in layer order, whatever the file's
    plot({"run": tmp_path / "run"}, tmp_path / "out" / "probe.png")
    assert (tmp_path / "out" / "probe.png").stat().st_size > 1000
    with pytest.raises(ProbeError, match="no probe.csv"):
        read_probe(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "probe.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ProbeError, match="expected step,stat,layer,value"):
        read_probe(tmp_path / "other")


def test_a_resumed_probe_replaces_the_steps_it_repeats(tmp_path):
    """A resume from a checkpoint at step 10 repeats steps 10 and 20: probe.csv keeps step 0
    and holds each later step once, as the CSV log does."""
    import csv

    from gridlstm.run.depth_probe import DepthProbe

    path = tmp_path / "probe.csv"
    first = DepthProbe(every_n_steps=10, path=str(path))
    for step in (0, 10, 20):
        first.write(step, [(step, "forget", 1, 0.5)])
    resumed = DepthProbe(every_n_steps=10, path=str(path))
    for step in (10, 20, 30):
        resumed.write(step, [(step, "forget", 1, 0.25)])
    rows = list(csv.DictReader(path.open()))
    assert [(r["step"], r["value"]) for r in rows] == [
        ("0", "0.5"),
        ("10", "0.25"),
        ("20", "0.25"),
        ("30", "0.25"),
    ]

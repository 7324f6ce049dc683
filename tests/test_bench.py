"""The benchmark command runs and reports what the docs quote (tiny sizes; no timing asserts)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from gridlstm import bench as command
from gridlstm.benchmarks import backends, suite
from gridlstm.nn.kernels.native import build as native_build


def test_bench_writes_json_with_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [
        "hidden=8",
        "layers=2",
        "batch=3",
        "length=5",
        "grid_size=3",
        "grid_hidden=4",
        "grid_layers=2",
        "grid_batch=2",
        "repeats=2",
        "warmup=1",
        "backends=fast,hyperplane,naive",
        "tr_batch=2",
        "tr_src_len=3",
        "tr_tgt_len=3",
        "tr_params=150000",
        f"json={out}",
    ]
    results = command.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    g2 = results["grid2d"]
    lstm = g2["nn.LSTM"]["tokens_per_s"]
    for backend in ("fast", "hyperplane", "naive"):
        row = g2[f"grid2d/{backend}"]
        assert row["tokens_per_s"] > 0  # the ratio reads "this many times nn.LSTM's speed"
        assert row["ratio_to_nn.LSTM"] == pytest.approx(row["tokens_per_s"] / lstm)
        assert row["params"] == g2["grid2d/fast"]["params"]
    g3 = results["grid3d"]
    naive = g3["grid3d/naive"]["seconds"]  # speedups read "this many times faster than naive"
    assert g3["hyperplane_speedup"] == pytest.approx(naive / g3["grid3d/hyperplane"]["seconds"])
    per_op = g3["grid3d/hyperplane, per-op steps"]["seconds"]
    assert g3["per_op_speedup"] == pytest.approx(naive / per_op)
    assert min(results["mnist"]["seconds"], results["mnist"]["seconds_per_op_steps"]) > 0
    # Where the native steps build, rows that have both paths time both.
    mnist = results["mnist"]
    if native_build.load():
        speedup = mnist["seconds_pytorch_steps"] / mnist["seconds"]
        assert mnist["native_speedup"] == pytest.approx(speedup)
        pytorch_3d = g3["grid3d/hyperplane, pytorch steps"]["seconds"]
        assert g3["pytorch_steps_speedup"] == pytest.approx(naive / pytorch_3d)
        scan = results["variants"]["paper-form/scan"]
        pytorch_scan = results["variants"]["paper-form/scan, pytorch steps"]
        ratio = scan["tokens_per_s"] / pytorch_scan["tokens_per_s"]
        assert scan["native_speedup"] == pytest.approx(ratio)
        assert results["native_build"]["loaded"] is True
    else:
        assert "native_speedup" not in mnist and "native_build" not in results
    translation = results["translation"]
    for model in ("reencoder", "lstm_attention"):
        row = translation[model]
        assert abs(row["params"] - 150_000) / 150_000 < 0.05  # same budget for both
        assert min(row["train_tokens_per_s"], row["beam4_sentences_per_s"]) > 0
    printed = capsys.readouterr().out
    assert "vs nn.LSTM" in printed and "beam-4 sent/s" in printed
    # The GPU targets: computed on any device; at these sizes only MNIST and translation
    # are timed at the targets' sizes (the others need the bench's default shapes).
    assert "GPU targets" in printed
    rows = {row["target"]: row for row in results["targets"]}
    assert rows["MNIST 3-LSTM faster than 2 CPU cores"]["measured"] == mnist["seconds"]
    assert rows["time priority >= 0.30x nn.LSTM"]["met"] is None
    assert rows["3-LSTM 14x14x3 >= 50x naive"]["met"] is None
    reencoder = rows["Reencoder training tokens/s >= 3x"]
    assert reencoder["measured"] == translation["reencoder"]["train_tokens_per_s"]


def test_targets_read_their_rows_at_their_sizes_and_say_whether_they_are_met():
    from gridlstm.benchmarks import targets

    results = {
        "grid2d": dict(targets.SHAPE_2D),
        "variants": {
            "time-priority/hyperplane": {"ratio_to_nn.LSTM": 0.31},
            "paper-form/hyperplane": {"ratio_to_nn.LSTM": 0.29},
        },
        "grid3d": {"grid": "14x14", "layers": 3, "hyperplane_speedup": 60.0},
        "mnist": {"seconds": 0.01, "seconds_cuda_graphs": 0.004},
    }
    rows = {row["target"]: row for row in targets.check(results)}
    assert rows["time priority >= 0.30x nn.LSTM"]["met"] is True
    assert rows["paper form >= 0.30x nn.LSTM"]["met"] is False
    assert rows["3-LSTM 14x14x3 >= 50x naive"]["met"] is True
    mnist = rows["MNIST 3-LSTM fwd+bwd >= 5x faster"]
    assert mnist["measured"] == 0.004 and mnist["met"] is True  # the faster of the two paths
    assert rows["Reencoder training tokens/s >= 3x"]["met"] is None  # not timed
    results["grid2d"]["hidden"] = 128  # other sizes than the targets': not compared
    rows = {row["target"]: row for row in targets.check(results)}
    assert rows["time priority >= 0.30x nn.LSTM"]["measured"] is None


def test_bench_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        command.main(["hidden=0"])
    assert "hidden must be >= 1" in capsys.readouterr().err


def test_the_peer_row_computes_our_time_priority_2_lstm():
    """The LSTMCell loop is the same function as GridLSTM(priority=[0]) with its weights, so
    the peer ratio compares equal work."""
    import torch

    from gridlstm.nn import GridLSTM

    torch.manual_seed(0)
    peer = backends.CellLoopGrid(6, 3).double()
    ours = GridLSTM(6, 6, 3, 1, priority=[0], project_input=False, batch_first=True).double()
    with torch.no_grad():
        for layer, block in enumerate(ours.blocks):
            time, depth = block.transforms
            d_cell, t_cell = peer.depth[layer], peer.time[layer]
            depth.weight.copy_(torch.cat([d_cell.weight_ih, d_cell.weight_hh], 1))
            depth.bias.copy_(d_cell.bias_ih + d_cell.bias_hh)
            time.weight.copy_(torch.cat([t_cell.weight_hh, t_cell.weight_ih], 1))
            time.bias.copy_(t_cell.bias_ih + t_cell.bias_hh)
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(peer(x)[0], ours(x)[0])


def test_preset_shapes_time_each_preset_against_an_lstm_of_its_shape():
    """The presets section builds each preset's grid as train.py does, at the preset's batch
    and length, with a comparison of the same width and depth; the FLOP ratios are the
    architectures' (a 2-LSTM does two LSTM transforms per cell, the tied 1-LSTM half of a
    stacked LSTM's input-and-hidden GEMM, the 3-LSTM three transforms over three inputs)."""
    from gridlstm.benchmarks.preset_shapes import PRESETS, bench_presets
    from tests.conftest import ROOT

    rows = bench_presets(ROOT / "conf", threads=(1,), repeats=1, warmup=0)
    assert list(rows) == list(PRESETS)
    shapes = {name: (row["batch"], row["length"], row["layers"]) for name, row in rows.items()}
    assert shapes == {
        "default": (64, 9, 4),  # 2-digit addition: 10 tokens, the last only a target
        "parity_cpu": (64, 1, 16),
        "addition_cpu": (64, 12, 4),
        "memorization_cpu": (64, 17, 4),
        "text_cpu": (32, 100, 2),
        "mnist_cpu": (64, 49, 2),  # 4x4 patches of a 28x28 image
    }
    assert rows["default"]["hidden"] == 128 and rows["default"]["comparison"] == "stacked_lstm"
    assert rows["mnist_cpu"]["comparison"] == "nn.LSTM"
    for name in ("default", "addition_cpu", "memorization_cpu", "text_cpu"):
        assert rows[name]["flop_ratio"] == pytest.approx(2.0, rel=0.01), name
    # Parity: 16 steps of 4d x d, plus the input projection, against 16 layers of 4d x 2d.
    assert rows["parity_cpu"]["flop_ratio"] == pytest.approx(0.5, abs=0.01)
    # MNIST 3-LSTM: 3 transforms of 4d x 3d per cell, plus the patch projection.
    assert 4.5 <= rows["mnist_cpu"]["flop_ratio"] < 4.6
    for row in rows.values():
        timed = row["1_threads"]
        assert timed["grid_ms"] > 0 and timed["comparison_ms"] > 0
        assert timed["ratio"] == pytest.approx(timed["grid_ms"] / timed["comparison_ms"])
    console = Console(file=io.StringIO(), width=120)
    console.print(suite.preset_table(rows))
    printed = console.file.getvalue()
    assert "mnist_cpu" in printed and "1t: grid/vs" in printed and "4.53x" in printed


@pytest.mark.parametrize(
    ("op", "found"),
    [
        ("aten::mm", "matmul"),
        ("aten::addmm_", "matmul"),
        ("aten::bmm", "matmul"),
        ("gridlstm::scan_forward", "gates"),
        ("gridlstm::lstm_gates_backward", "gates"),
        ("aten::sigmoid", "gates"),
        ("aten::mkldnn_rnn_layer_backward", "rnn kernel"),
        ("aten::cat", "movement"),
        ("aten::copy_", "movement"),
        ("autograd::engine::evaluate_function: MmBackward0", "other ops"),
    ],
)
def test_profile_puts_each_op_in_its_part(op, found):
    from gridlstm.benchmarks.profile_split import part

    assert part(op) == found


def test_profile_splits_a_shape_and_refuses_an_unknown_one(tmp_path, capsys):
    from gridlstm.benchmarks.profile_split import PARTS

    out = tmp_path / "split.json"
    command.main(["profile", "shapes=grid3d", "repeats=1", f"json={out}"])
    found = json.loads(out.read_text())["grid3d"]
    assert found["matmul"] > 0 and found["seconds"] > 0
    # The parts add up to the profiled step (what no op accounts for is "outside ops").
    assert sum(found[p] for p in PARTS) == pytest.approx(found["profiled_seconds"], rel=0.05)
    assert "| 3-LSTM 14x14 x 3 layers (hyperplane) |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        command.main(["profile", "shapes=grid3d,lstm2", f"json={tmp_path / 'bad.json'}"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "error: shapes=grid3d,lstm2: choose from paper, time, tied, default, lstm, grid3d"
    )
    assert not (tmp_path / "bad.json").exists()

"""Throughput benchmark (``python -m gridlstm.bench [device=cuda] [json=out.json]``).

Times forward + backward, in one process:
1. a 2-LSTM (time x depth) on every backend that applies, against `torch.nn.LSTM` with the
   same hidden size, layers, batch and length (tokens/s and the ratio to nn.LSTM). The grid
   does twice the matrix work of a stacked LSTM (two transforms per block), so 0.5x is
   parity per FLOP;
2. 2-LSTMs outside the LSTM kernel (time priority, the paper output form) on the scan and
   hyperplane backends, and the per-cell `nn.LSTMCell` loop of the public PyTorch Grid LSTMs
   (the peer row), each against nn.LSTM;
3. a 3-LSTM over an S x S grid with depth: the hyperplane scheduler against the naive
   per-cell reference (the speed-up), and the MNIST preset's 3-LSTM (seconds per step);
4. translation at the ``translation_cpu`` preset's sizes: training target tokens/s of the
   Reencoder and the attention LSTM baseline, and decoding sentences/s (greedy, beam 4);
5. with ``presets=true``, each CPU preset's training step against a stacked LSTM of its
   shape, on 1 and 2 threads (`gridlstm.benchmarks.preset_shapes`).

This module times each part; `gridlstm.benchmarks.suite` runs them and prints the tables.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gridlstm.nn import GridLSTM, count_parameters, dispatch, graphs
from gridlstm.nn.kernels.native import build as native_build


def seconds_per_step(
    steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """Median wall time of one call of each step. The steps are timed round-robin, so
    drift (CPU clocks, other load) affects every model alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    timings: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in timings.items()}


def steps_context(per_op: bool = False, pytorch: bool = False) -> contextlib.AbstractContextManager:
    """``per_op``: the hyperplane scheduler's per-op steps instead of the handwritten ones
    (``dispatch.without("handwritten", "fused")``); ``pytorch``: the PyTorch steps where the
    native (CPU) or the fused Triton (GPU) ones would run (`gridlstm.nn.kernels.native`,
    `gridlstm.nn.kernels.fused`)."""
    if per_op:
        return dispatch.without("handwritten", "fused")
    if pytorch:
        return dispatch.without("native", "fused")
    return contextlib.nullcontext()


def gpu_rows(device: torch.device) -> bool:
    """Whether rows comparing the fused Triton step and CUDA graphs with the PyTorch steps
    are timed (on a GPU)."""
    return device.type == "cuda"


def graphed_copy(net: GridLSTM) -> GridLSTM:
    """A copy of ``net`` that replays CUDA graphs (`gridlstm.nn.graphs`)."""
    import copy

    twin = copy.deepcopy(net)
    graphs.graphed(twin)
    return twin


def forward_backward(
    net: nn.Module, x: torch.Tensor, per_op: bool = False, pytorch: bool = False
) -> Callable[[], None]:
    """One forward + backward on the steps `steps_context` names."""

    def step() -> None:
        net.zero_grad(set_to_none=True)
        with steps_context(per_op, pytorch):
            output = net(x)[0]
            output.float().sum().backward()

    return step


def against_lstm(
    args: Any,
    nets: dict[str, nn.Module],
    device: torch.device,
    dtype: torch.dtype,
    pytorch_rows: tuple[str, ...] = (),
) -> tuple[dict, dict[str, float]]:
    """Time ``nets`` and an `nn.LSTM` of the same hidden size, layers, batch and length in
    one round-robin; rows of tokens/s, parameters and the ratio to nn.LSTM. ``pytorch_rows``:
    nets also timed on the PyTorch steps (rows named "<name>, pytorch steps")."""
    d, layers, batch, length = args.hidden, args.layers, args.batch, args.length
    x = torch.randn(batch, length, d, device=device, dtype=dtype)
    nets = {"nn.LSTM": nn.LSTM(d, d, layers, batch_first=True), **nets}
    nets = {name: net.to(device, dtype) for name, net in nets.items()}
    steps = {name: forward_backward(net, x) for name, net in nets.items()}
    for name in pytorch_rows:  # the same net again on the PyTorch steps
        steps[f"{name}, pytorch steps"] = forward_backward(nets[name], x, pytorch=True)
        nets[f"{name}, pytorch steps"] = nets[name]
    seconds = seconds_per_step(steps, device, args.warmup, args.repeats)
    results: dict = {"hidden": d, "layers": layers, "batch": batch, "length": length}
    for name, net in nets.items():
        results[name] = {
            "tokens_per_s": batch * length / seconds[name],
            "params": count_parameters(net),
            "ratio_to_nn.LSTM": seconds["nn.LSTM"] / seconds[name],
        }
    return results, seconds


# The 2-LSTM every figure in docs/benchmarks.md timed: depth priority and an input projection
# (the library's defaults before 0.5), named so that the rows stay comparable across versions.
TIMED_2LSTM = {"priority": "depth", "project_input": True}


def bench_grid2d(args: Any, device: torch.device, dtype: torch.dtype) -> dict:
    d, layers = args.hidden, args.layers
    nets: dict[str, nn.Module] = {}
    for backend in args.backends.split(","):
        if backend != "fast" and args.length * layers > args.max_cells:
            continue  # a per-cell backend over a long sequence would take minutes
        nets[f"grid2d/{backend}"] = GridLSTM(
            d, d, layers, grid_dims=1, backend=backend, batch_first=True, **TIMED_2LSTM
        )
    return against_lstm(args, nets, device, dtype)[0]


class CellLoopGrid(nn.Module):
    """The peer: a time-priority 2-LSTM as the public PyTorch Grid LSTMs write it, two
    `nn.LSTMCell` per layer (depth cell: input the time h, state the depth (h, c); then time
    cell: input the new depth h, state the time (h, c)), looping over time and layers. The
    same function and FLOPs as our ``priority=[0]`` 2-LSTM."""

    def __init__(self, size: int, layers: int) -> None:
        super().__init__()
        self.depth = nn.ModuleList(nn.LSTMCell(size, size) for _ in range(layers))
        self.time = nn.ModuleList(nn.LSTMCell(size, size) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        zeros = x.new_zeros(x.shape[0], x.shape[-1])
        state = [(zeros, zeros) for _ in self.time]
        outputs = []
        for t in range(x.shape[1]):
            h_depth, c_depth = x[:, t], zeros
            cells = zip(self.depth, self.time, strict=True)
            for layer, (depth_cell, time_cell) in enumerate(cells):
                h_time, c_time = state[layer]
                h_depth, c_depth = depth_cell(h_time, (h_depth, c_depth))
                state[layer] = time_cell(h_depth, (h_time, c_time))
            outputs.append(h_depth)
        return torch.stack(outputs, 1), None


def bench_variants(args: Any, device: torch.device, dtype: torch.dtype) -> dict:
    """2-LSTMs the LSTM kernel cannot run (time priority, the paper output form) on the
    backends that can, plus the per-cell peer, all against nn.LSTM at the same shape."""
    d, layers = args.hidden, args.layers
    nets: dict[str, nn.Module] = {}
    variants = {
        "time-priority": {"priority": [0]},
        "time-priority, tied": {"priority": [0], "tied": True},
        "paper-form": {"output_form": "paper"},
    }
    for variant, options in variants.items():
        options = {**TIMED_2LSTM, **options}
        for backend in ("scan", "hyperplane") if "tied" not in variant else ("scan",):
            nets[f"{variant}/{backend}"] = GridLSTM(
                d, d, layers, grid_dims=1, backend=backend, batch_first=True, **options
            )
        if args.compile:
            nets[f"{variant}/scan, compile={args.compile}"] = GridLSTM(
                d,
                d,
                layers,
                grid_dims=1,
                backend="scan",
                batch_first=True,
                compile=args.compile,
                **options,
            )
    nets["time-priority/LSTMCell loop"] = CellLoopGrid(d, layers)
    native = tuple(name for name in nets if "/scan" in name and "compile" not in name)
    native = native if native_steps(device) else ()
    if gpu_rows(device):  # the fused step against the PyTorch steps, and CUDA graphs
        native = tuple(name for name in nets if name.endswith(("/hyperplane", "/scan")))
        for name in native:
            nets[f"{name}, cuda graphs"] = graphed_copy(nets[name])
    results, seconds = against_lstm(args, nets, device, dtype, pytorch_rows=native)
    peer = seconds["time-priority/LSTMCell loop"]
    for name in results:
        if name.startswith("time-priority") and not name.endswith("loop"):
            results[name]["ratio_to_LSTMCell_loop"] = peer / seconds[name]
    for name in native:
        key = "fused_speedup" if gpu_rows(device) else "native_speedup"
        results[name][key] = seconds[f"{name}, pytorch steps"] / seconds[name]
    return results


def portable_build_info(info: dict[str, object]) -> dict[str, object]:
    """The native build's record with its path cut to the cache entry (build key / file name).
    Why: bench JSON files are committed, and the cache's absolute path names the machine that
    wrote them, not anything a reader on another machine can use."""
    out = dict(info)
    if isinstance(out.get("path"), str):
        path = Path(str(out["path"]))
        out["path"] = f"{path.parent.name}/{path.name}"
    return out


def native_steps(device: torch.device) -> bool:
    """Whether the native CPU steps run here (then rows time them against the PyTorch
    steps)."""
    return device.type == "cpu" and not native_build.switched_off() and native_build.load()


def bench_mnist(args: Any, device: torch.device, dtype: torch.dtype) -> dict:
    """The MNIST preset's 3-LSTM (experiment=mnist_cpu: 4x4 patches -> 7x7 grid, 2 layers,
    32 units, batch 64, untied), forward + backward, on the hyperplane scheduler."""
    x = torch.randn(64, 7, 7, 16, device=device, dtype=dtype)
    torch.manual_seed(0)
    net = GridLSTM(16, 32, 2, grid_dims=2, backend="hyperplane").to(device, dtype)
    steps = {"mnist": forward_backward(net, x), "per-op": forward_backward(net, x, per_op=True)}
    if native_steps(device) or gpu_rows(device):
        steps["pytorch"] = forward_backward(net, x, pytorch=True)
    if gpu_rows(device):
        steps["graphs"] = forward_backward(graphed_copy(net), x)
    results = {"grid": "7x7", "hidden": 32, "layers": 2, "batch": 64}
    if args.compile:
        compiled = GridLSTM(16, 32, 2, grid_dims=2, backend="hyperplane", compile=args.compile)
        compiled.load_state_dict(net.state_dict())
        steps["compiled"] = forward_backward(compiled.to(device, dtype), x)
        start = time.perf_counter()
        steps["compiled"]()  # compiles
        results["compile_seconds"] = time.perf_counter() - start
    seconds = seconds_per_step(steps, device, 1, args.repeats)
    results["seconds"] = seconds["mnist"]
    results["seconds_per_op_steps"] = seconds["per-op"]
    if "pytorch" in seconds:
        results["seconds_pytorch_steps"] = seconds["pytorch"]
        key = "fused_speedup" if gpu_rows(device) else "native_speedup"
        results[key] = seconds["pytorch"] / seconds["mnist"]
    if "graphs" in seconds:
        results["seconds_cuda_graphs"] = seconds["graphs"]
    if args.compile:
        results["seconds_compiled"] = seconds["compiled"]
    return results


def bench_grid3d(args: Any, device: torch.device, dtype: torch.dtype) -> dict:
    size, d, layers, batch = args.grid_size, args.grid_hidden, args.grid_layers, args.grid_batch
    x = torch.randn(batch, size, size, d, device=device, dtype=dtype)
    nets = {}
    for backend in ("hyperplane", "naive"):
        torch.manual_seed(0)
        nets[backend] = GridLSTM(d, d, layers, grid_dims=2, backend=backend).to(device, dtype)
    steps = {name: forward_backward(net, x) for name, net in nets.items()}
    steps["hyperplane, per-op steps"] = forward_backward(nets["hyperplane"], x, per_op=True)
    if native_steps(device) or gpu_rows(device):
        steps["hyperplane, pytorch steps"] = forward_backward(nets["hyperplane"], x, pytorch=True)
    seconds = seconds_per_step(steps, device, 1, max(1, args.repeats // 2))
    results: dict = {"grid": f"{size}x{size}", "hidden": d, "layers": layers, "batch": batch}
    for name in steps:
        net = nets[name.split(",")[0]]
        results[f"grid3d/{name}"] = {"seconds": seconds[name], "params": count_parameters(net)}
    results["hyperplane_speedup"] = seconds["naive"] / seconds["hyperplane"]
    results["per_op_speedup"] = seconds["naive"] / seconds["hyperplane, per-op steps"]
    if "hyperplane, pytorch steps" in seconds:
        results["pytorch_steps_speedup"] = seconds["naive"] / seconds["hyperplane, pytorch steps"]
    return results


def bench_translation(args: Any, device: torch.device, dtype: torch.dtype) -> dict:
    """The translation_cpu preset's models (widths solved for 2.5M parameters with 4,000-token
    vocabularies) on random sentence pairs of Tatoeba's mean lengths. Untrained models never
    emit </s>, so decoding always runs to the length limit: a worst case, equal for all."""
    from gridlstm.nn import AttentionSeq2Seq, Reencoder
    from gridlstm.nn.models.decoding import decode
    from gridlstm.nn.sizing import width_for_budget

    vocab, batch, src_len, tgt_len = 4000, args.tr_batch, args.tr_src_len, args.tr_tgt_len
    builders = {
        "reencoder": lambda d: Reencoder(vocab, vocab, hidden_size=d, num_layers=2),
        "lstm_attention": lambda d: AttentionSeq2Seq(vocab, vocab, hidden_size=d, num_layers=2),
    }
    src = torch.randint(3, vocab, (batch, src_len), device=device)
    lengths = torch.full((batch,), src_len, device=device)
    tgt = torch.randint(3, vocab, (batch, tgt_len), device=device)
    nets, train_steps = {}, {}
    for name, build in builders.items():
        width, _ = width_for_budget(build, args.tr_params)
        torch.manual_seed(0)
        net = build(width).to(device, dtype)
        nets[name] = net

        def step(net: nn.Module = net, pytorch: bool = False) -> None:
            net.zero_grad(set_to_none=True)
            with steps_context(pytorch=pytorch):
                logits = net(src, lengths, tgt)
                loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), tgt.flatten())
                loss.backward()

        train_steps[name] = step
        if name == "reencoder" and native_steps(device):
            train_steps["reencoder, pytorch steps"] = functools.partial(step, pytorch=True)
    seconds = seconds_per_step(train_steps, device, 1, max(1, args.repeats // 2))
    decode_len = 2 * src_len + 10  # the preset's limit: 2 x source + 10
    decode_steps = {}
    for name, net in nets.items():
        for beam in (1, 4):
            decode_steps[f"{name}/beam{beam}"] = lambda net=net, beam=beam: decode(
                net.eval(), src, lengths, 1, 2, decode_len, beam
            )
    decode_seconds = seconds_per_step(decode_steps, device, 0, max(1, args.repeats // 5))
    results: dict = {"batch": batch, "src_len": src_len, "tgt_len": tgt_len, "vocab": vocab}
    for name, net in nets.items():
        results[name] = {
            "hidden": net.hidden_size,
            "params": count_parameters(net),
            "train_tokens_per_s": batch * tgt_len / seconds[name],
            "greedy_sentences_per_s": batch / decode_seconds[f"{name}/beam1"],
            "beam4_sentences_per_s": batch / decode_seconds[f"{name}/beam4"],
        }
    results["reencoder_train_ratio"] = seconds["lstm_attention"] / seconds["reencoder"]
    if "reencoder, pytorch steps" in seconds:
        results["reencoder_native_speedup"] = (
            seconds["reencoder, pytorch steps"] / seconds["reencoder"]
        )
    return results

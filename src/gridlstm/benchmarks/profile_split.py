"""Where a forward + backward spends its time (``python -m gridlstm.bench profile``).

Why: a speed-up is worth building only where the time goes. `torch.profiler` records every
ATen and native op of a few steps of each benchmark shape; each op's self time lands in one
of four parts, and what no op accounts for is the Python, autograd and dispatch work between
them:

* ``matmul``: the matrix products (``mm``, ``addmm``, ``bmm``, ...), which bound the speed;
* ``gates``: the gate arithmetic and state update (the native ``gridlstm::`` ops, or the
  elementwise ATen ops of the PyTorch steps);
* ``movement``: copies, concatenation, indexing and allocation;
* ``rnn kernel``: oneDNN's fused RNN primitive behind `torch.nn.LSTM` (its products and
  gate work in one op; ``ONEDNN_VERBOSE=1`` names the primitives it runs);
* ``outside ops``: the profiled wall time less every op's self time.

The profiler adds a few microseconds per op, so the ``outside ops`` share and the small
ops' shares are upper bounds; the split is for reading, the bench's ratios are the figures.

    python -m gridlstm.bench profile [shapes=paper,time,tied,default,lstm,grid3d] [repeats=5]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gridlstm.benchmarks.backends import TIMED_2LSTM, forward_backward
from gridlstm.nn import GridLSTM
from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.config import check_writable
from gridlstm.run.errors import ConfigError

PARTS = ("matmul", "gates", "movement", "rnn kernel", "other ops", "outside ops")
MATMUL = {
    "mm", "addmm", "addmm_", "bmm", "baddbmm", "baddbmm_", "addbmm", "matmul", "linear", "addmv",
}  # fmt: skip
MOVEMENT = {
    "copy_", "cat", "stack", "select", "slice", "narrow", "index", "index_select", "clone",
    "contiguous", "empty", "empty_strided", "zeros", "zeros_like", "zero_", "fill_",
    "as_strided", "view", "reshape", "transpose", "t", "permute", "unsqueeze", "squeeze",
    "split", "chunk", "unbind", "expand", "_to_copy", "to", "new_zeros", "resize_", "detach",
}  # fmt: skip
GATES = {
    "sigmoid", "tanh", "mul", "mul_", "add", "add_", "sub", "rsub", "addcmul_", "sigmoid_backward",
    "tanh_backward", "sum", "where", "neg", "exp", "div",
}  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: its name in the bench's tables and how to build it."""

    label: str
    build: Callable[[], tuple[nn.Module, torch.Tensor]]


def grid2d(**options: object) -> Callable[[], tuple[nn.Module, torch.Tensor]]:
    def build() -> tuple[nn.Module, torch.Tensor]:
        given = {**TIMED_2LSTM, **options}  # the bench's 2-LSTM rows, as they are timed
        net = GridLSTM(256, 256, 3, grid_dims=1, batch_first=True, **given)
        return net, torch.randn(32, 100, 256)

    return build


def lstm() -> tuple[nn.Module, torch.Tensor]:
    return nn.LSTM(256, 256, 3, batch_first=True), torch.randn(32, 100, 256)


def grid3d() -> tuple[nn.Module, torch.Tensor]:
    return GridLSTM(32, 32, 3, grid_dims=2, backend="hyperplane"), torch.randn(16, 14, 14, 32)


SHAPES = {
    "paper": Shape("paper-form/scan", grid2d(backend="scan", output_form="paper")),
    "time": Shape("time-priority/scan", grid2d(backend="scan", priority=[0])),
    "tied": Shape(
        "time-priority, tied/scan",
        grid2d(backend="scan", priority=[0], tied=True),
    ),
    "default": Shape("grid2d/fast (the default model)", grid2d()),
    "lstm": Shape("nn.LSTM", lstm),
    "grid3d": Shape("3-LSTM 14x14 x 3 layers (hyperplane)", grid3d),
}


def part(name: str) -> str:
    """The part an op's self time belongs to (op names as the profiler gives them)."""
    if name.startswith("gridlstm::"):
        return "gates" if "gates" in name or "scan" in name or "hyperplane" in name else "other ops"
    if "mkldnn_rnn" in name:
        return "rnn kernel"
    op = name.removeprefix("aten::")
    if op in MATMUL:
        return "matmul"
    if op in MOVEMENT:
        return "movement"
    if op in GATES:
        return "gates"
    return "other ops"


def split(step: Callable[[], None], repeats: int) -> dict[str, float]:
    """Seconds per step in each part over ``repeats`` profiled steps, plus the unprofiled
    ``seconds`` per step (timed first, over the same number of steps)."""
    from torch.profiler import ProfilerActivity, profile

    step()  # warm-up: builds, caches, first allocations
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - start) / repeats
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        wall = time.perf_counter() - start
    found = dict.fromkeys(PARTS, 0.0)
    for event in prof.key_averages():
        found[part(event.key)] += event.self_cpu_time_total / 1e6
    found["outside ops"] = max(0.0, wall - sum(found.values()))
    out = {name: value / repeats for name, value in found.items()}
    return out | {"seconds": seconds, "profiled_seconds": wall / repeats}


def run(names: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """The split of each named shape, each on a fresh model with seed 0."""
    results = {}
    for name in names:
        torch.manual_seed(0)
        net, x = SHAPES[name].build()
        results[name] = split(forward_backward(net, x), repeats)
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    """The split as a markdown table: seconds per step, then each part's share of it."""
    lines = [
        "| shape | s / step | " + " | ".join(PARTS) + " |",
        "|---|---:|" + "---:|" * len(PARTS),
    ]
    for name, found in results.items():
        total = found["profiled_seconds"]
        shares = " | ".join(f"{100 * found[p] / total:.0f}%" for p in PARTS)
        lines.append(f"| {SHAPES[name].label} | {found['seconds']:.3f} | {shares} |")
    return "\n".join(lines)


@dataclass
class ProfileConfig:
    shapes: str = option(",".join(SHAPES), "shapes to profile (comma-separated)")
    repeats: int = option(5, "profiled steps per shape (after as many timed ones)")
    json: str | None = option(None, "also write the split here")


def parse(argv: list[str]) -> ProfileConfig:
    """The options, checked before anything is built: one line naming a bad one."""
    cfg, _ = arguments.parse(argv, ProfileConfig)
    arguments.positive(cfg, "repeats")
    unknown = [name for name in cfg.shapes.split(",") if name not in SHAPES]
    if unknown or not cfg.shapes:
        raise ConfigError(f"shapes={cfg.shapes}: choose from {', '.join(SHAPES)}")
    if cfg.json is not None:
        check_writable(Path(cfg.json).expanduser(), "json", file=True)
    return cfg


def main(argv: list[str]) -> None:
    def body(given: list[str]) -> dict:
        cfg = parse(given)
        results = run(cfg.shapes.split(","), cfg.repeats)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
        )
        print(table(results))
        if cfg.json:
            Path(cfg.json).expanduser().write_text(json.dumps(results, indent=2) + "\n")
        return results

    arguments.run_command(argv, __doc__, ProfileConfig, body)

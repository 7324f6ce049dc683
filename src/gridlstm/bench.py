"""Throughput benchmark: the grid's backends against torch.nn.LSTM, the hyperplane scheduler,
the MNIST 3-LSTM and translation, forward + backward in one process.

    python -m gridlstm.bench [device=cuda] [repeats=15] [json=out.json]    (or: gridlstm-bench)
    python -m gridlstm.bench steps [overrides] -- model:depth[,depth] ...   (step times)
    python -m gridlstm.bench profile [shapes=paper,lstm] [repeats=5]    (where the time goes)

What each part times and why: `gridlstm.benchmarks`; the `steps` mode (seconds of
training per 100k samples at a run's shape, through the real loop, as JSON the GPU check
reads): `gridlstm.benchmarks.step_speed`; the ``profile`` mode (each op's self time in
matrix products, gate arithmetic, data movement and the rest):
`gridlstm.benchmarks.profile_split`; measured numbers: docs/benchmarks.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.conf import find_conf_dir
from gridlstm.run.config import check_device, check_writable
from gridlstm.run.errors import ConfigError


@dataclass
class BenchConfig:
    device: str = option("cpu", "cpu, cuda or cuda:N")
    dtype: str = option("float32", "float32 or bfloat16")
    hidden: int = option(256, "2-LSTM: hidden size")
    layers: int = option(3, "2-LSTM: layers")
    batch: int = option(32, "2-LSTM: batch")
    length: int = option(100, "2-LSTM: time steps")
    backends: str = option("fast,hyperplane", "2-LSTM: backends to time (comma-separated)")
    max_cells: int = option(2000, "skip per-cell backends above this many cells")
    grid_size: int = option(14, "3-LSTM: S of the S x S grid")
    grid_hidden: int = option(32, "3-LSTM: hidden size")
    grid_layers: int = option(3, "3-LSTM: layers")
    grid_batch: int = option(16, "3-LSTM: batch")
    warmup: int = option(2, "untimed steps first")
    repeats: int = option(10, "timed steps")
    skip_grid3d: bool = option(False, "leave out the 3-LSTM")
    skip_variants: bool = option(False, "leave out time priority and the paper output form")
    skip_mnist: bool = option(False, "leave out the MNIST preset's 3-LSTM")
    skip_translation: bool = option(False, "leave out translation")
    tr_batch: int = option(64, "translation: pairs per batch")
    tr_src_len: int = option(7, "translation: source tokens")
    tr_tgt_len: int = option(9, "translation: target tokens")
    tr_params: int = option(2_500_000, "translation: parameter budget")
    compile: str | None = option(
        None, "also time the scan variants and MNIST with GridLSTM(compile=MODE)"
    )
    presets: bool = option(
        False,
        "also time each CPU preset's training step against a "
        "stacked LSTM of its shape (gridlstm.benchmarks.preset_shapes)",
    )
    preset_threads: str = option("1,2", "presets: thread counts (comma-separated)")
    json: str | None = option(None, "also write the results here")


def check(args: BenchConfig) -> None:
    """One `ConfigError` line for an option out of range, before anything is timed."""
    import torch  # here, not at the top: --help stays quick

    from gridlstm.nn.backends import BACKENDS, compiled

    positive = (
        "hidden",
        "layers",
        "batch",
        "length",
        "grid_size",
        "grid_hidden",
        "grid_layers",
        "grid_batch",
        "repeats",
        "tr_batch",
        "tr_src_len",
        "tr_tgt_len",
        "tr_params",
    )
    for name in positive:
        if getattr(args, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(args, name)}")
    for name in ("warmup", "max_cells"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(args, name)}")
    if args.dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"dtype={args.dtype}: choose float32 or bfloat16")
    if args.compile is not None and args.compile not in compiled.MODES:
        raise ConfigError(f"compile={args.compile}: choose {', '.join(compiled.MODES)}")
    timed = [b for b in BACKENDS if b != "auto"]
    if not args.backends or set(args.backends.split(",")) - set(timed):
        raise ConfigError(f"backends={args.backends}: choose from {', '.join(timed)}")
    check_device(args.device)
    if torch.device(args.device).type not in ("cpu", "cuda"):
        raise ConfigError(f"device={args.device}: the benchmark runs on cpu, cuda or cuda:N")
    counts = args.preset_threads.split(",")
    if not all(c.strip().isdigit() and int(c) >= 1 for c in counts):
        raise ConfigError(f"preset_threads={args.preset_threads}: thread counts >= 1, e.g. 1,2")
    if args.presets and (args.device != "cpu" or find_conf_dir() is None):
        raise ConfigError(
            "presets=true: times the CPU presets, so device=cpu, from a checkout "
            "with conf/ (or GRIDLSTM_CONF set)"
        )
    if args.json is not None:
        check_writable(Path(args.json).expanduser(), "json", file=True)


def parse(argv: list[str]) -> BenchConfig:
    cfg, _ = arguments.parse(argv, BenchConfig)
    check(cfg)
    return cfg


def run(argv: list[str]) -> dict:
    from gridlstm.benchmarks.suite import run as bench

    return bench(parse(argv))


def main(argv: list[str] | None = None) -> dict | None:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["steps"]:  # Hydra overrides and models, not this command's options
        from gridlstm.benchmarks.step_speed import main as steps

        steps(given[1:])
        return None
    if given[:1] == ["profile"]:  # where the time goes, per benchmark shape
        from gridlstm.benchmarks.profile_split import main as profile

        profile(given[1:])
        return None
    return arguments.run_command(argv, __doc__, BenchConfig, run)


if __name__ == "__main__":
    main()

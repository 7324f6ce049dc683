"""Throughput benchmark: the grid's backends against torch.nn.LSTM, the hyperplane scheduler,
the MNIST 3-LSTM and translation, forward + backward in one process.

    python -m gridlstm.bench [device=cuda] [repeats=15] [json=out.json]    (or: gridlstm-bench)

What each part times and why: `gridlstm.analysis.benchmarks`; measured numbers:
docs/benchmarks.md.
"""

from __future__ import annotations

from gridlstm.analysis.benchmarks import BenchConfig
from gridlstm.run import arguments


def run(argv: list[str]) -> dict:
    from gridlstm.analysis.benchmarks import run as bench

    cfg, _ = arguments.parse(argv, BenchConfig)
    return bench(cfg)


def main(argv: list[str] | None = None) -> dict | None:
    return arguments.run_command(argv, __doc__, BenchConfig, run)


if __name__ == "__main__":
    main()

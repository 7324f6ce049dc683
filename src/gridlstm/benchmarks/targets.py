"""The GPU speed targets (the fused Triton step and CUDA graphs), read off a bench result.

Each target names the bench row it reads and the number it must reach; the baselines are
what the per-op design measured on one H100 in float32 (docs/benchmarks.md, GPU section).
`check` returns one row per target, with ``met`` None where the bench did not time that row
(e.g. a run with ``skip_translation=true``) or timed it at other sizes than the target's.
``scripts/gpu_check.sh`` writes them to JSON with the device name; on a CPU they are
computed too, labelled with the CPU, and mean nothing against GPU baselines (the dry run
uses them to check the plumbing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    row: str  # what is read, in words
    goal: float
    higher_is_better: bool
    read: Callable[[dict], float | None]


def _path(*keys: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        value: Any = results
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value)

    return read


def _at(sizes: dict[str, Any], part: str, read: Callable[[dict], float | None]):
    """``read``, only where the bench ran ``part`` at the target's sizes (else None)."""

    def guarded(results: dict) -> float | None:
        where = results.get(part) or {}
        if any(where.get(key) != value for key, value in sizes.items()):
            return None
        return read(results)

    return guarded


SHAPE_2D = {"hidden": 256, "layers": 3, "batch": 32, "length": 100}  # the bench's defaults


def _mnist_fused(results: dict) -> float | None:
    """The MNIST step on the fastest path this run timed (the fused step, or graphs)."""
    mnist = results.get("mnist") or {}
    times = [mnist[k] for k in ("seconds", "seconds_cuda_graphs") if k in mnist]
    return min(times) if times else None


MNIST_BEFORE_S = 0.028  # H100, fp32, per-op design (0.028-0.040 s over two runs)
CPU_MNIST_S = 0.021  # the same step on 2 CPU cores (0.021-0.027 s)
REENCODER_BEFORE = 10_569  # H100, fp32, training target tokens/s

TARGETS = (
    Target(
        "MNIST 3-LSTM fwd+bwd >= 5x faster",
        "mnist: seconds (best of fused, graphs)",
        MNIST_BEFORE_S / 5,
        False,
        _mnist_fused,
    ),
    Target(
        "MNIST 3-LSTM faster than 2 CPU cores",
        "mnist: seconds (best of fused, graphs)",
        CPU_MNIST_S,
        False,
        _mnist_fused,
    ),
    Target(
        "time priority >= 0.30x nn.LSTM",
        "variants: time-priority/hyperplane",
        0.30,
        True,
        _at(SHAPE_2D, "grid2d", _path("variants", "time-priority/hyperplane", "ratio_to_nn.LSTM")),
    ),
    Target(
        "paper form >= 0.30x nn.LSTM",
        "variants: paper-form/hyperplane",
        0.30,
        True,
        _at(SHAPE_2D, "grid2d", _path("variants", "paper-form/hyperplane", "ratio_to_nn.LSTM")),
    ),
    Target(
        "3-LSTM 14x14x3 >= 50x naive",
        "grid3d: hyperplane_speedup",
        50.0,
        True,
        _at({"grid": "14x14", "layers": 3}, "grid3d", _path("grid3d", "hyperplane_speedup")),
    ),
    Target(
        "Reencoder training tokens/s >= 3x",
        "translation: reencoder train_tokens_per_s",
        3 * REENCODER_BEFORE,
        True,
        _path("translation", "reencoder", "train_tokens_per_s"),
    ),
)


def check(results: dict) -> list[dict]:
    """One row per target: measured value, goal, and whether it is met (None: not timed)."""
    rows = []
    for target in TARGETS:
        value = target.read(results)
        met = None
        if value is not None:
            met = value >= target.goal if target.higher_is_better else value <= target.goal
        rows.append(
            {
                "target": target.name,
                "row": target.row,
                "goal": target.goal,
                "measured": value,
                "met": met,
            }
        )
    return rows


__all__ = ["TARGETS", "check"]

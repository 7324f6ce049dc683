"""Compare a re-run with the record it re-ran (`gridlstm.rerun`): the training fingerprint
step by step, the validation curve point by point, the final metrics, and where the machine or
versions differ. Exact comparison: two runs of one commit on one machine and thread count are
expected to agree to the last bit, so any difference is a finding, reported where it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Final values that measure the machine's speed, not the training: never compared.
TIMING = ("wall_time_s", "train/chars_per_s", "train/tokens_per_s")


@dataclass
class Comparison:
    """What matched: fingerprint steps, validation points and final metrics compared, the
    first fingerprint step that differs (None: none), the first validation (samples) that
    differs, and each differing final metric's (recorded, re-run) pair."""

    steps: int = 0
    validations: int = 0
    metrics: int = 0
    first_step: int | None = None
    first_validation: float | None = None
    largest: float = 0.0
    largest_key: str = ""
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.first_step is None and self.first_validation is None and not self.changed

    def verdict(self, tolerance: float = 0.0) -> str:
        """One line: identical / same within X / differs from step K."""
        compared = (
            f"{self.steps} fingerprint steps, {self.validations} validations and "
            f"{self.metrics} final metrics"
        )
        if self.identical:
            return f"identical: {compared} equal to the last bit"
        if self.first_step is not None:
            return (
                f"differs from step {self.first_step} (the first fingerprint step that differs;"
                f" largest final difference {self.largest:.3g} in {self.largest_key or '-'})"
            )
        if self.first_validation is not None:
            return (
                f"differs from the validation at {self.first_validation:,.0f} samples "
                f"(largest final difference {self.largest:.3g} in {self.largest_key or '-'})"
            )
        if self.largest <= tolerance or not math.isfinite(self.largest):
            return f"same within {self.largest:.3g} ({self.largest_key}): {compared} compared"
        return (
            f"differs in final metrics only: largest difference {self.largest:.3g} in "
            f"{self.largest_key} ({compared} compared)"
        )


def losses(record: dict[str, Any]) -> dict[int, float]:
    found = ((record.get("fingerprint") or {}).get("train/loss")) or {}
    return {int(k): float(v) for k, v in found.items()}


def compare(
    recorded: dict[str, Any],
    rerun: dict[str, Any],
    recorded_curve: list[tuple[float, float]],
    rerun_curve: list[tuple[float, float]],
    steps: int | None = None,
) -> Comparison:
    """Compare a re-run with its record; ``steps``: only the first ``steps`` steps (the
    fingerprint up to them and the validations both have; final metrics are not compared)."""
    result = Comparison()
    old, new = losses(recorded), losses(rerun)
    common = sorted(s for s in set(old) & set(new) if steps is None or s <= steps)
    result.steps = len(common)
    result.first_step = next((s for s in common if old[s] != new[s]), None)
    at = dict(rerun_curve)
    points = [(s, v) for s, v in recorded_curve if s in at]
    result.validations = len(points)
    result.first_validation = next((s for s, v in points if at[s] != v), None)
    if steps is not None:
        return result
    for key, value in recorded.items():
        if key in TIMING or key in ("fingerprint", "provenance") or key not in rerun:
            continue
        result.metrics += 1
        other = rerun[key]
        if other == value:
            continue
        result.changed[key] = (value, other)
        if isinstance(value, (int, float)) and isinstance(other, (int, float)):
            gap = abs(float(value) - float(other))
        else:
            gap = math.inf
        if gap > result.largest or not result.largest_key:
            result.largest, result.largest_key = gap, key
    return result

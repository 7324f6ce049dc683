"""The rule a claims page states its verdicts by: a difference between two cells of a sweep is
"beyond the seed spread" when Welch's t-test (two-sided, unequal variances, scipy) gives
p < 0.05 over their completed runs; otherwise it is "within the seed spread", and with fewer
than 2 runs in a cell the rule cannot decide.

Why a stated test: with 3 seeds a gap of one or two standard deviations is common by chance,
and a page that calls such a gap "shown" overstates it. `compare` writes, for a sweep's main
metric, every cell's mean, std and n and the best cell against each other one; ``verdicts.md``
(from ``python -m gridlstm.tables``) is the file a page quotes.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Any

from scipy import stats

from gridlstm.analysis.markdown import pipe_table
from gridlstm.run.runs import COMPLETED

ALPHA = 0.05
BEYOND, WITHIN, UNDECIDED = "beyond the seed spread", "within the seed spread", "cannot decide"


@dataclass(frozen=True)
class Cell:
    """One configuration's completed runs of a metric."""

    name: str
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """The sample standard deviation (nan below 2 runs)."""
        return statistics.stdev(self.values) if self.n > 1 else math.nan


@dataclass(frozen=True)
class Comparison:
    best: Cell
    other: Cell
    t: float
    p: float
    verdict: str


def welch(best: Cell, other: Cell, alpha: float = ALPHA) -> Comparison:
    """Welch's two-sided t-test of ``best`` against ``other``, and the verdict under the rule.
    Two cells whose runs are all identical differ beyond the spread only if their values do."""
    if best.n < 2 or other.n < 2:
        return Comparison(best, other, math.nan, math.nan, f"{UNDECIDED} (n < 2)")
    if best.std == 0 and other.std == 0:
        p = 1.0 if best.mean == other.mean else 0.0
        return Comparison(best, other, math.nan, p, BEYOND if p < alpha else WITHIN)
    with warnings.catch_warnings():  # nearly equal runs: scipy warns, and p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        t, p = stats.ttest_ind(best.values, other.values, equal_var=False)
    return Comparison(best, other, float(t), float(p), BEYOND if p < alpha else WITHIN)


def cell_name(row: dict[str, Any], group_by: list[str]) -> str:
    """A cell's name: its keys' values (``depth=4, priority=none``)."""
    return ", ".join(f"{k}={row.get(k, '')}" for k in group_by) or "all"


def cells(rows: list[dict[str, Any]], group_by: list[str], metric: str) -> list[Cell]:
    """The completed runs' ``metric`` per combination of ``group_by`` values (first-seen
    order); runs without a finite value are left out."""
    grouped: dict[str, list[float]] = {}
    for row in rows:
        if row.get("status", COMPLETED) != COMPLETED:
            continue
        try:
            value = float(row.get(metric))
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            grouped.setdefault(cell_name(row, group_by), []).append(value)
    return [Cell(name, tuple(values)) for name, values in grouped.items()]


def compare(
    rows: list[dict[str, Any]], group_by: list[str], metric: str, mode: str
) -> list[Comparison]:
    """The best cell of ``metric`` (``mode`` max or min, by mean) against every other."""
    found = [c for c in cells(rows, group_by, metric) if c.n]
    if len(found) < 2:
        return []
    best = (max if mode == "max" else min)(found, key=lambda c: c.mean)
    return [welch(best, other) for other in found if other is not best]


def pairwise(
    rows: list[dict[str, Any]], group_by: list[str], metric: str, mode: str
) -> list[Comparison]:
    """Every pair of cells, the better one by mean (``mode``) first. Why: a claim can
    be about two cells of which neither is the best (the paper's tied grid against a stacked
    LSTM, when an untied grid leads both); its test must be written, not worked out by hand."""
    found = sorted(
        (c for c in cells(rows, group_by, metric) if c.n),
        key=lambda c: c.mean,
        reverse=mode == "max",
    )
    return [welch(a, b) for i, a in enumerate(found) for b in found[i + 1 :]]


def report(
    rows: list[dict[str, Any]],
    group_by: list[str],
    metric: str,
    mode: str,
    within: list[str] | None = None,
    pairs: bool = False,
    level: int = 2,
) -> str:
    """`markdown` of `compare`, once per combination of the ``within`` keys' values (e.g. each
    k of a parity sweep: cells are compared at the same task size only), each part under a
    heading of ``level`` (deeper where a page nests the report in a section of its own); with
    ``pairs``, each part also gets `pairs_markdown` of `pairwise` where it has more than two
    cells."""

    def part(rows: list[dict[str, Any]], keys: list[str]) -> str:
        text = markdown(compare(rows, keys, metric, mode), metric, mode)
        every = pairwise(rows, keys, metric, mode) if pairs else []
        return text + ("\n" + pairs_markdown(every, metric) if len(every) > 2 else "")

    within = [k for k in within or [] if k in group_by]
    if not within:
        return part(rows, group_by)
    keys = [k for k in group_by if k not in within]
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        parts.setdefault(", ".join(f"{k}={row.get(k, '')}" for k in within), []).append(row)
    hashes = "#" * level
    return "\n".join(f"{hashes} {name}\n\n" + part(rows, keys) for name, rows in parts.items())


def markdown(comparisons: list[Comparison], metric: str, mode: str) -> str:
    """The comparisons as the table a page quotes, with the rule stated above it."""
    if not comparisons:
        return f"No two cells of {metric} to compare.\n"
    best = comparisons[0].best
    lines = [
        f"Best cell by mean {metric} ({mode}): **{best.name}**, "
        f"{best.mean:.4f} +- {best.std:.4f} (n = {best.n}).",
        "",
        f"Rule: Welch's t-test, two-sided; p < {ALPHA} is beyond the seed spread.",
        "",
    ]
    head = ["against", f"{metric} mean +- std", "n", "difference", "t", "p", "verdict"]
    lines += pipe_table(
        head,
        (
            [c.other.name, f"{c.other.mean:.4f} +- {c.other.std:.4f}", c.other.n]
            + [f"{best.mean - c.other.mean:+.4f}", f"{c.t:.2f}", f"{c.p:.3g}", c.verdict]
            for c in comparisons
        ),
    )
    return "\n".join(lines) + "\n"


def pairs_markdown(comparisons: list[Comparison], metric: str) -> str:
    """Every pair's comparison (`pairwise`) as a table, under the same rule."""
    head = ["cell", "against", "difference", "t", "p", "verdict"]
    lines = [f"Every pair, the better mean {metric} first:", ""]
    lines += pipe_table(
        head,
        (
            [c.best.name, c.other.name, f"{c.best.mean - c.other.mean:+.4f}"]
            + [f"{c.t:.2f}", f"{c.p:.3g}", c.verdict]
            for c in comparisons
        ),
    )
    return "\n".join(lines) + "\n"

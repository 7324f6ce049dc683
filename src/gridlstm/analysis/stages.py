"""From a search stage to the next: each family's configuration chosen by a rule fixed before
the search ran (docs/claims/parity_sizes, docs/claims/addition_lengths).

Why in code: a rule applied by hand drifts towards the family one hopes to see win. Here it
is data: a list of (column, better direction) compared in order, a missing value counting as
the worst, applied to the job records the study queue copied (``<results>/<claim>/<tag>/jobs/
<job>/metrics.json`` with its ``overrides.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import yaml

from gridlstm.analysis.markdown import pipe_table

# The search stages' rule: fewest samples to val 0.99, then highest val/acc, then fewer layers.
FASTEST_THEN_BEST = (
    ("val/samples_to_threshold", "min"),
    ("val/acc", "max"),
    ("model.net.num_layers", "min"),
)


def number(value: Any) -> float | None:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def rank_key(row: dict[str, Any], rule: Sequence[tuple[str, str]]) -> tuple[float, ...]:
    """Smaller is better, column by column; a missing value is the worst."""
    key = []
    for column, better in rule:
        value = number(row.get(column))
        key.append(math.inf if value is None else (value if better == "min" else -value))
    return tuple(key)


def group_of(row: dict[str, Any], groups: Sequence[str]) -> tuple[str, ...]:
    """The row's values of ``groups`` (e.g. model and param_budget), as text."""
    return tuple(str(row.get(g, "")) for g in groups)


def choose(
    rows: list[dict[str, Any]],
    groups: Sequence[str],
    rule: Sequence[tuple[str, str]] = FASTEST_THEN_BEST,
) -> dict[tuple[str, ...], dict[str, Any]]:
    """The best row of each combination of ``groups`` (e.g. model and param_budget)."""
    best: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        group = group_of(row, groups)
        if group not in best or rank_key(row, rule) < rank_key(best[group], rule):
            best[group] = row
    return best


def _order(group: tuple[str, ...]) -> tuple[tuple[float, str], ...]:
    """Group order: numbers by value, names alphabetically."""
    return tuple((n, "") if (n := number(g)) is not None else (math.inf, g) for g in group)


# What a chosen configuration carries into the next stage, besides its group's keys.
CHOSEN_KEYS = ("model.net.num_layers", "optim.optimizer.lr")


def as_cases(
    chosen: dict[tuple[str, ...], dict[str, Any]],
    groups: Sequence[str],
    keys: Sequence[str] = CHOSEN_KEYS,
) -> list[dict[str, Any]]:
    """The chosen rows as a studies file's ``cases`` (`gridlstm.analysis.studies`), in
    group order (numbers by value), values typed as YAML would read them."""
    cases = []
    for group in sorted(chosen, key=_order):
        row = chosen[group]
        case = dict(zip(groups, group, strict=True)) | {k: row.get(k) for k in keys}
        cases.append({k: yaml.safe_load(str(v)) for k, v in case.items()})
    return cases


CHOICES_HEAD = "Choices by `FASTEST_THEN_BEST` per "


def choices_markdown(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """``choices.md``: per group, how many configurations ran and reached val/acc 0.99, and
    the one the rule chose (a page cites this file; a test regenerates it)."""
    chosen = choose(rows, groups)
    head = [
        *groups,
        "ran",
        "reached 0.99",
        "chosen",
        "samples to 0.99",
        "val/acc",
        "hidden",
        "params",
        "macs_per_sample",
    ]
    lines = [
        CHOICES_HEAD + ", ".join(groups) + " (`gridlstm.analysis.stages`), over the completed "
        f"jobs in jobs/ ({len(rows)}).",
        "",
    ]
    table = []
    for group in sorted(chosen, key=_order):
        mine = [r for r in rows if group_of(r, groups) == group]
        reached = sum(number(r.get("val/samples_to_threshold")) is not None for r in mine)
        row = chosen[group]
        config = ", ".join(f"{k.split('.')[-1]} {row.get(k)}" for k in CHOSEN_KEYS)
        cells = [*group, len(mine), reached, config]
        cells += [_cell(row.get("val/samples_to_threshold")), _cell(row.get("val/acc"), "{:.3f}")]
        cells += [_cell(row.get(c)) for c in ("hidden", "params", "macs_per_sample")]
        table.append(cells)
    return "\n".join(lines + pipe_table(head, table)) + "\n"


def _cell(value: Any, form: str = "{:,.0f}") -> str:
    found = number(value)
    return "-" if found is None else form.format(found)


# Learning rates in half-decade steps: a search's grid is a run of three of them, and the
# rate just beyond each end is the neighbour a choice at that end adds first.
RATE_LADDER = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
RATE = "optim.optimizer.lr"


def _on_ladder(rate: float) -> int:
    for index, step in enumerate(RATE_LADDER):
        if math.isclose(rate, step, rel_tol=1e-6):
            return index
    raise ValueError(f"learning rate {rate} is not on the ladder {RATE_LADDER}")


def edge_cases(
    rows: list[dict[str, Any]],
    chosen: dict[tuple[str, ...], dict[str, Any]],
    groups: Sequence[str],
) -> list[dict[str, Any]]:
    """The search's edge rule: a group whose chosen rate is the lowest or highest rate its
    search ran gets its chosen configuration at the ladder's next rate beyond that end
    (3e-3 -> 1e-2, 3e-4 -> 1e-4), as ``cases``. Once that job ran the end moved: the rule
    names a rate again only while the end keeps winning. Why: a best rate at the grid's edge
    says only that the optimum may lie beyond it."""
    cases = []
    for group in sorted(chosen, key=_order):
        mine = [r for r in rows if group_of(r, groups) == group]
        rates = sorted({_on_ladder(float(r[RATE])) for r in mine if number(r.get(RATE))})
        row = chosen[group]
        at = _on_ladder(float(row[RATE]))
        if len(rates) < 2 or at not in (rates[0], rates[-1]):
            continue
        beyond = at - 1 if at == rates[0] else at + 1
        if not 0 <= beyond < len(RATE_LADDER):
            continue
        cases.append(as_cases({group: row}, groups)[0] | {RATE: RATE_LADDER[beyond]})
    return cases

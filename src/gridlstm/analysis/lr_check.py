"""The learning-rate check of a frontier study (docs/claims/parity_sizes, stage 6): the
configurations a search chose at an easy setting are tried at the learning rates next to
theirs where each family stopped solving, and a rate that solves there goes on through the
same frontier rule (`gridlstm.analysis.frontier`).

Why: a configuration chosen at k = 12 need not be the best at k = 14, and a choice at the
edge of the search's grid says the best may lie beyond it. The check asks this of every
family alike, by rules fixed before its runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gridlstm.analysis.frontier import Frontier, frontiers, missing_seeds
from gridlstm.analysis.stages import number, read_jobs

LR_KEY = "optim.optimizer.lr"


def learning_rate_cases(
    found: list[Frontier],
    grid: Sequence[float],
    seed: int = 1,
    *,
    family: str = "model",
    size: str = "param_budget",
    key: str = "task.datamodule.bits",
) -> list[dict[str, Any]]:
    """The learning-rate check's ``cases``: each family and size at the setting after its
    frontier (where it stops solving), its chosen configuration at the learning rates next to
    its chosen one in ``grid`` (one step down, one step up), one seed. A configuration chosen
    at an easy setting may not be the best at a hard one, and a choice at the edge of the
    search's grid says the best may lie beyond it: ``grid`` extends the search's by a step
    each way, so an edge choice is tried outside it."""
    steps = sorted(grid)
    cases = []
    for row in found:
        if row.after is None:
            continue
        config = row.chosen()
        chosen = config.get(LR_KEY)
        if chosen not in steps:
            raise ValueError(
                f"{row.family} at {size}={row.size}: learning rate {chosen!r} is not in the "
                f"grid {steps}"
            )
        at = steps.index(chosen)
        for lr in steps[max(at - 1, 0) : at] + steps[at + 1 : at + 2]:
            case = {family: row.family, size: yaml.safe_load(row.size), **config, LR_KEY: lr}
            cases.append({**case, key: row.after, "seed": seed})
    return cases


def learning_rate_frontier_cases(
    folders: Sequence[Path],
    settings: Sequence[int],
    seeds: Sequence[int] = (1, 2, 3),
    *,
    family: str = "model",
    size: str = "param_budget",
    key: str = "task.datamodule.bits",
    metric: str = "test/acc",
    bar: float = 0.99,
) -> list[dict[str, Any]]:
    """Where a checked learning rate solved (the frontier rule: 2 of 3 seeds, 1 of 1), the
    frontier goes on in that rate: the seeds still missing at its largest setting solved and
    at the setting after it (`missing_seeds`, one rate at a time). A rate that solved
    nothing at its family's setting is done."""
    rates = sorted({n for f in folders for r in read_jobs(f) if (n := number(r.get(LR_KEY)))})
    cases = []
    for rate in rates:
        match = {LR_KEY: rate}
        found = frontiers(
            folders, family=family, size=size, key=key, metric=metric, bar=bar, match=match
        )
        moved = {(r.family, r.size) for r in found if r.largest_solved is not None}
        named = missing_seeds(
            folders,
            settings,
            seeds,
            family=family,
            size=size,
            key=key,
            metric=metric,
            bar=bar,
            match=match,
        )
        cases += [c for c in named if (c[family], str(c[size])) in moved]
    return cases

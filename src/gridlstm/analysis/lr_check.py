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

from gridlstm.analysis.frontier import (
    SOLVED_SHARE,
    Frontier,
    Ladder,
    cells,
    find_conf_dir,
    frontiers,
    missing_seeds,
    seed_of,
)
from gridlstm.analysis.job_records import read_jobs
from gridlstm.analysis.stages import number

LR_KEY = "optim.optimizer.lr"


def learning_rate_cases(
    found: list[Frontier], grid: Sequence[float], ladder: Ladder, seed: int = 1
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
        chosen = row.chosen().get(LR_KEY)
        if chosen not in steps:
            raise ValueError(
                f"{row.family} at {ladder.size}={row.size}: learning rate {chosen!r} is not in "
                f"the grid {steps}"
            )
        at = steps.index(chosen)
        for lr in steps[max(at - 1, 0) : at] + steps[at + 1 : at + 2]:
            cases.append({**ladder.case(row, row.after), LR_KEY: lr, "seed": seed})
    return cases


def learning_rate_frontier_cases(
    folders: Sequence[Path],
    settings: Sequence[int],
    ladder: Ladder,
    seeds: Sequence[int] = (1, 2, 3),
) -> list[dict[str, Any]]:
    """Where a checked learning rate solved (the frontier rule: 2 of 3 seeds, 1 of 1), the
    frontier goes on in that rate: the seeds still missing at its largest setting solved and
    at the setting after it (`missing_seeds`, one rate at a time). A rate that solved
    nothing at its family's setting is done."""
    cases = []
    for rate in rates_in(folders):
        match = {LR_KEY: rate}
        found = frontiers(folders, ladder, match)
        moved = {(r.family, r.size) for r in found if r.largest_solved is not None}
        named = missing_seeds(folders, settings, ladder, seeds, match)
        cases += [c for c in named if (c[ladder.family], str(c[ladder.size])) in moved]
    return cases


def rates_in(folders: Sequence[Path]) -> list[float]:
    """The learning rates the folders' completed jobs ran with, smallest first."""
    return sorted({n for f in folders for r in read_jobs(f) if (n := number(r.get(LR_KEY)))})


def best_rate_frontiers(
    chosen: Sequence[Path], checked: Sequence[Path], ladder: Ladder
) -> list[tuple[Frontier, float | None]]:
    """Per family and size, the frontier at its best learning rate, with that rate (None: the
    chosen configuration's): the chosen configuration's frontier (``chosen``'s jobs) or a
    checked rate's (``checked``'s jobs at that rate alone), whichever solved the larger
    setting. A tie keeps the chosen rate: the search chose it, and more stages stand behind
    it. A checked rate's runs are never pooled with another rate's."""
    best: dict[tuple[str, str], tuple[Frontier, float | None]] = {
        (r.family, r.size): (r, None) for r in frontiers(chosen, ladder)
    }
    for rate in rates_in(checked):
        for row in frontiers(checked, ladder, {LR_KEY: rate}):
            have = best.get((row.family, row.size))
            if row.largest_solved is None:
                continue
            if have is None or (have[0].largest_solved or -1) < row.largest_solved:
                best[(row.family, row.size)] = (row, rate)
    return sorted(best.values(), key=lambda b: (b[0].family, number(b[0].size) or 0))


def best_rate_cells(
    chosen: Sequence[Path],
    checked: Sequence[Path],
    found: list[tuple[Frontier, float | None]],
    ladder: Ladder,
    more: Sequence[Path] = (),
) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """Each family and size's runs at its best rate (`best_rate_frontiers`), every setting it
    ran there: the cells a verdict compares across families. ``more``: folders of further
    seeds run at each family's best rate once it was fixed (a deciding stage); their runs join
    a cell only at that family's rate (the checked one, or its chosen configuration's), by
    seed, so a folder holding several families' rates never pools one rate into another's."""
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    conf_dir = find_conf_dir()
    for row, rate in found:
        folders, match = (chosen, None) if rate is None else (checked, {LR_KEY: rate})
        at = rate if rate is not None else number(row.chosen().get(LR_KEY))
        if more and at is None:
            raise ValueError(
                f"{row.family} at {ladder.size}={row.size}: its chosen configuration names no "
                f"{LR_KEY}, so the further seeds in {', '.join(map(str, more))} cannot be "
                "matched to its rate"
            )
        gathered = {
            cell: {seed_of(r, conf_dir): r for r in runs}
            for cell, runs in cells(folders, ladder, match).items()
            if cell[:2] == (row.family, row.size)
        }
        for cell, runs in cells(more, ladder, {LR_KEY: at}).items():
            if cell[:2] == (row.family, row.size):
                gathered.setdefault(cell, {}).update({seed_of(r, conf_dir): r for r in runs})
        out.update({cell: list(by_seed.values()) for cell, by_seed in gathered.items()})
    return out


CHOSEN = "Chosen configurations from: "
CHECKED = "; checked learning rates from: "
MORE = "; further seeds at each best rate from: "


def best_rate_intro(chosen: Sequence[str], checked: Sequence[str], more: Sequence[str] = ()) -> str:
    """The first line of a best-rate table: every kind of source, for a test to re-read."""
    further = f"{MORE}{', '.join(more)}" if more else ""
    return (
        f"{CHOSEN}{', '.join(chosen)}{CHECKED}{', '.join(checked)}{further} "
        "(each family and size at the rate that solves the largest setting, a tie keeping "
        "the chosen one; a rate's runs gather over the folders by seed and are never pooled "
        f"with another rate's; solved: at least {SOLVED_SHARE:.0%} of a cell's runs pass the "
        "bar on test)."
    )


def best_rate_sources(text: str) -> tuple[list[str], list[str], list[str]]:
    """The chosen, checked and further-seed folders a best-rate table names on its first
    line (the last empty where it names none)."""
    line = text.splitlines()[0].removeprefix(CHOSEN).split(" (", 1)[0]
    line, _, more = line.partition(MORE)
    chosen, checked = line.split(CHECKED)
    return chosen.split(", "), checked.split(", "), more.split(", ") if more else []

"""The frontier of a sweep that goes up in difficulty: per family and size, the largest
setting solved (docs/claims/parity_sizes: the largest k of k-bit parity, against parameters
and against multiply-adds per sample).

Why a module: the page's tables and numbers come from the jobs the study queue copied,
by one rule fixed before the runs: a setting is solved when at least two thirds of its
completed runs (1 of 1, 2 of 3) reach the bar on the test set. A cell's runs gather over
the stages by seed: the seeds stage runs seeds 2 and 3 beside the frontier's seed 1, and a
later stage's run of a seed replaces the earlier stage's run of that seed.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gridlstm.analysis import verdicts
from gridlstm.analysis.job_records import read_jobs
from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.stages import CHOSEN_KEYS, number
from gridlstm.run.conf import find_conf_dir

SOLVED_SHARE = 2 / 3
# The frontier rules choose on validation by default (`Ladder.metric`): a choice read off the
# test split would reuse the numbers a verdict is decided on. The stages committed before
# 2026-11-27 chose on test accuracy as they ran; their tests and the pages that restate them
# read AS_RAN, and a frontier reported as a result (frontier.md, best_rate.md) is too.
AS_RAN = "test/acc"


@dataclass(frozen=True)
class Ladder:
    """How a sweep that goes up in difficulty reads: per ``family`` and ``size`` group, the
    setting ``key`` (k of k-bit parity) rises, and a run passes where ``metric`` >= ``bar``."""

    key: str
    family: str = "model"
    size: str = "param_budget"
    metric: str = "val/acc"
    bar: float = 0.99

    def case(self, row: Frontier, setting: int | None) -> dict[str, Any]:
        """A job at ``setting`` in a frontier row's family, size and chosen configuration."""
        return {
            self.family: row.family,
            self.size: yaml.safe_load(row.size),
            **row.chosen(),
            self.key: setting,
        }


@dataclass(frozen=True)
class Frontier:
    family: str
    size: str  # the group's size value, e.g. the parameter budget
    largest_solved: int | None  # None: solved at no setting that ran
    after: int | None  # the smallest setting run above largest_solved (all, if none solved)
    params: float | None  # mean parameter count of the runs at largest_solved
    macs: float | None  # mean multiply-adds per sample there
    runs: int  # runs at largest_solved
    config: tuple[tuple[str, Any], ...] = ()  # the chosen configuration (CHOSEN_KEYS)

    def chosen(self) -> dict[str, Any]:
        """The chosen configuration as a studies file's case keys, typed as YAML reads them."""
        return {k: yaml.safe_load(str(v)) for k, v in self.config if v is not None}


def seed_of(row: dict[str, Any], conf_dir: Path | None) -> str:
    """The seed a job ran with: its ``seed`` override or record (``metrics.json`` holds it),
    else the one its experiment file sets, else train.yaml's (for records written before
    the seed was: the queue copies the overrides, not the composed config)."""
    if row.get("seed") is not None:
        return str(row["seed"])
    files = [f"experiment/{row['experiment']}.yaml"] if row.get("experiment") else []
    for name in [*files, "train.yaml"]:
        path = conf_dir / name if conf_dir else None
        if (
            path
            and path.is_file()
            and (seed := (yaml.safe_load(path.read_text()) or {}).get("seed")) is not None
        ):
            return str(seed)
    return "default"


def matches(row: dict[str, Any], match: dict[str, Any] | None) -> bool:
    """Whether a job ran with each of ``match``'s values (numbers compared as numbers)."""
    return all(
        number(row.get(k)) == number(v) if number(v) is not None else str(row.get(k)) == str(v)
        for k, v in (match or {}).items()
    )


def cells(
    folders: Sequence[Path], ladder: Ladder, match: dict[str, Any] | None = None
) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """Completed runs per (family, size, setting), gathered over the folders by seed (a later
    folder's run of a seed replaces an earlier one's); only the runs ``match`` names, if
    given (e.g. one learning rate of several in a folder)."""
    conf_dir = find_conf_dir()
    found: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for folder in folders:
        for row in read_jobs(folder):
            setting = number(row.get(ladder.key))
            if setting is None or not matches(row, match):
                continue
            cell = (str(row.get(ladder.family)), str(row.get(ladder.size)), int(setting))
            found.setdefault(cell, {})[seed_of(row, conf_dir)] = row
    return {cell: list(by_seed.values()) for cell, by_seed in found.items()}


def solved(runs: list[dict[str, Any]], metric: str, bar: float) -> bool:
    passed = sum((number(r.get(metric)) or -math.inf) >= bar for r in runs)
    return passed >= SOLVED_SHARE * len(runs)


def frontiers(
    folders: Sequence[Path], ladder: Ladder, match: dict[str, Any] | None = None
) -> list[Frontier]:
    by_group: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for (fam, sz, setting), runs in cells(folders, ladder, match).items():
        by_group.setdefault((fam, sz), {})[setting] = runs
    out = []
    for (fam, sz), settings in sorted(
        by_group.items(), key=lambda g: (g[0][0], number(g[0][1]) or 0)
    ):
        done = [s for s in sorted(settings) if solved(settings[s], ladder.metric, ladder.bar)]
        best = max(done) if done else None
        above = [s for s in settings if best is None or s > best]
        first = next(iter(settings.values()))[0]
        at = settings[best] if best is not None else []

        def mean(column: str, at: list[dict[str, Any]] = at) -> float | None:
            values = [v for r in at if (v := number(r.get(column))) is not None]
            return statistics.fmean(values) if values else None

        out.append(
            Frontier(
                fam,
                sz,
                best,
                min(above) if above else None,
                mean("params"),
                mean("macs_per_sample"),
                len(at),
                tuple((k, first.get(k)) for k in CHOSEN_KEYS),
            )
        )
    return out


def verdicts_markdown(folders: Sequence[Path], sources: Sequence[str], ladder: Ladder) -> str:
    """Per size and setting that two or more families ran, their ``ladder.metric`` (test
    accuracy, on the pages) compared by the claims' rule (`gridlstm.analysis.verdicts`: Welch,
    p < 0.05): where one family solves a k and another does not, whether the gap is beyond
    the seed spread."""
    head = SOURCES + ", ".join(sources) + " (runs gathered by seed)."
    return cells_verdicts(cells(folders, ladder), head, ladder)


def cells_verdicts(
    found: dict[tuple[str, str, int], list[dict[str, Any]]],
    head: str,
    ladder: Ladder,
    pairs: bool = False,
) -> str:
    """`verdicts_markdown` of cells already gathered (e.g. each family at its own rate), below
    ``head`` (the line naming their sources); ``pairs``: every pair of families compared too
    (`gridlstm.analysis.verdicts.pairwise`)."""
    family, size, key = ladder.family, ladder.size, ladder.key
    ran: dict[tuple[str, int], set[str]] = {}
    for fam, sz, setting in found:
        ran.setdefault((sz, setting), set()).add(fam)
    order = sorted(found, key=lambda c: (number(c[1]) or 0, c[2], c[0]))
    rows = [
        {**run, family: fam, size: sz, key: setting}
        for fam, sz, setting in order
        if len(ran[(sz, setting)]) > 1
        for run in found[(fam, sz, setting)]
    ]
    return (
        head
        + "\n\n"
        + verdicts.report(
            rows, [size, key, family], ladder.metric, "max", within=[size, key], pairs=pairs
        )
    )


SOURCES = "From the jobs in: "


def markdown(
    found: list[Frontier],
    sources: Sequence[str],
    setting_name: str = "k",
    intro: str | None = None,
) -> str:
    """``frontier.md``: the table a page cites, naming its sources (a test regenerates it);
    ``intro`` replaces the first line that names them."""
    head = ["family", "size", f"largest {setting_name} solved", "runs there", "params", "macs"]
    head += [f"{setting_name} after", "configuration"]
    lines = [
        intro
        or SOURCES
        + ", ".join(sources)
        + " (a cell's runs gather over the folders by seed; solved: "
        f"at least {SOLVED_SHARE:.0%} of a cell's runs pass the bar on test).",
        "",
    ]
    table = []
    for row in found:
        config = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in row.config if v is not None)
        cells = [row.family, row.size, row.largest_solved, row.runs]
        cells += [_count(row.params), _count(row.macs), row.after, config]
        table.append(["-" if c is None else c for c in cells])
    return "\n".join(lines + pipe_table(head, table)) + "\n"


def sources_of(page: str) -> list[str]:
    """The folders a ``frontier.md`` names on its first line (to regenerate it)."""
    return page.splitlines()[0].removeprefix(SOURCES).split(" (", 1)[0].split(", ")


def _count(value: float | None) -> str | None:
    return None if value is None else f"{value:,.0f}"


CSV_HEAD = ("family", "size", "largest_solved", "after", "params", "macs_per_sample", "runs")


def csv_text(found: list[Frontier]) -> str:
    """``frontier.csv`` beside ``frontier.md`` (a page ties its numbers to these cells)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEAD)
    for row in found:
        writer.writerow([getattr(row, f) for f in list(Frontier.__dataclass_fields__)[:-1]])
    return out.getvalue()


def seed_cases(found: list[Frontier], ladder: Ladder) -> list[dict[str, Any]]:
    """The seeds stage's ``cases``: each family and size at its largest setting solved and at
    the setting after it (at the smallest setting run, if it solved none)."""
    return [
        ladder.case(row, setting)
        for row in found
        for setting in (row.largest_solved, row.after)
        if setting is not None
    ]


def missing_seeds(
    folders: Sequence[Path],
    settings: Sequence[int],
    ladder: Ladder,
    seeds: Sequence[int] = (1, 2, 3),
    match: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The fill stage's ``cases``: each seed that has not run at a family and size's frontier
    or at the setting after it, over all the folders so far. Seeds can move a frontier (a k
    solved by seed 1 alone may fail in 2 of 3 seeds), so the stages repeat this until it is
    empty. Where no setting above the frontier ran (the sweep stopped below it), the setting
    after is the next of ``settings`` (the sweep's grid)."""
    ran = cells(folders, ladder, match)
    conf_dir = find_conf_dir()
    cases = []
    for row in frontiers(folders, ladder, match):
        after = row.after
        if after is None and row.largest_solved is not None:
            after = next((s for s in sorted(settings) if s > row.largest_solved), None)
        for setting in (row.largest_solved, after):
            if setting is None:
                continue
            have = {seed_of(r, conf_dir) for r in ran.get((row.family, row.size, setting), [])}
            case = ladder.case(row, setting)
            cases += [{**case, "seed": seed} for seed in seeds if str(seed) not in have]
    return cases


def deciding_seeds(
    folders: Sequence[Path], against: str, seeds: Sequence[int], ladder: Ladder
) -> list[dict[str, Any]]:
    """More seeds where 3 cannot decide: at each size, the setting after ``against``'s
    frontier (where it stops solving), every family that ran it, each of ``seeds`` it has
    not run, in that family's configuration. Its solved counts (1 of 3 against 3 of 3) and
    its accuracies (bimodal: a seed solves or sits at chance) are what 3 seeds leave open."""
    found = frontiers(folders, ladder)
    ran = cells(folders, ladder)
    conf_dir = find_conf_dir()
    at = {row.size: row.after for row in found if row.family == against}
    cases = []
    for row in found:
        setting = at.get(row.size)
        runs = ran.get((row.family, row.size, setting)) if setting is not None else None
        if not runs:
            continue
        have = {seed_of(r, conf_dir) for r in runs}
        cases += [{**ladder.case(row, setting), "seed": s} for s in seeds if str(s) not in have]
    return cases

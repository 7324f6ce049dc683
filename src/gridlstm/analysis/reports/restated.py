"""A page's verdicts restated with the 2-LSTMs run at priority none, by the rule its re-run
study fixed before it ran. Declared as a report (kind ``restated_verdicts``) in the page's
study.yaml: ``runs`` (the page's table.csv files or record folders), ``cell`` (the key a
family's cells differ in: ``model.net.num_layers``, or ``task.datamodule.digits``, where
cells compare at one length only), ``measures`` (each verdict's ``{metric, mode}``),
``reruns`` (the re-run's record folders) and ``file``. The re-run is of the 2-LSTMs
(`GRIDS`) at priority none; the depth pages' metric is validation exact-match.

The rule: the page's verdicts computed again with the re-run's grid jobs
(``<page>/priority_none*/cpu/jobs``) in place of the depth-priority grids of the page's runs,
the stacked-LSTM jobs unchanged, by the claims' rule (Welch's test,
`gridlstm.analysis.verdicts`). The depth pages compare every family and depth on validation
exact-match; the lengths page compares the families at each length on test exact-match and,
as its stage 2 did, on samples to validation 0.99. Writes
``file``: each cell's seeds under both priorities, the
restated verdicts, the page's verdicts as they were, and (outside the rule, for the reader)
each cell's two priorities compared.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlstm.analysis.declared import Study
from gridlstm.analysis.job_records import job_curve, read_jobs, read_table_csv, samples_to
from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.stages import number
from gridlstm.analysis.verdicts import report

METRIC, THRESHOLD = "val/acc", 0.99  # the depth pages' metric; every page's threshold (conf/task)
DEPTH, DIGITS, PRIORITY = "model.net.num_layers", "task.datamodule.digits", "priority"
SAMPLES = "val/samples_to_threshold"  # samples seen at validation 0.99 (None: not reached)
GRIDS = ("grid2d", "grid2d_untied")  # the families with a priority


REQUIRED = {"file", "runs", "cell", "measures", "reruns"}
OPTIONAL: set[str] = set()


@dataclass(frozen=True)
class Page:
    """Where a page's runs are and how its verdicts read them."""

    runs: tuple[str, ...]  # a table.csv, or the study folders its jobs were copied to
    cell: str  # the column a family's cells differ in: depth, or the task's length
    measures: tuple[tuple[str, str], ...]  # (metric, mode) of each verdict the page states
    reruns: tuple[str, ...]

    @property
    def by_length(self) -> bool:
        """Cells compared at the same length only: a task size, where depth is a design."""
        return self.cell == DIGITS

    @classmethod
    def declared(cls, entry: dict[str, Any]) -> Page:
        """The report's keys, as read from study.yaml."""
        measures = tuple((str(m["metric"]), str(m["mode"])) for m in entry["measures"])
        return cls(tuple(entry["runs"]), str(entry["cell"]), measures, tuple(entry["reruns"]))


def check(entry: dict[str, Any]) -> None:
    """The entry read as a `Page` (a ValueError says what is wrong)."""
    if entry["cell"] not in (DEPTH, DIGITS):
        raise ValueError(f"cell={entry['cell']!r}: choose {DEPTH} or {DIGITS}")
    for key in ("runs", "reruns", "measures"):
        if not isinstance(entry[key], list) or not entry[key]:
            raise ValueError(f"{key}: a list")
    for measure in entry["measures"]:
        if not isinstance(measure, dict) or measure.get("mode") not in ("max", "min"):
            raise ValueError("measures: each {metric: <metric>, mode: max or min}")


def page_rows(page: Path, spec: Page) -> list[dict[str, Any]]:
    """The page's completed jobs, each with the priority it ran (depth for the grids)."""
    rows: list[dict[str, Any]] = []
    for runs in spec.runs:
        if runs.endswith(".csv"):
            rows += read_table_csv(page / runs)[0]
        else:
            rows += read_jobs(page / runs)
    return [
        {**row, PRIORITY: "depth" if row["model"] in GRIDS else "-"}
        for row in rows
        if row.get("status", "completed") in ("", "completed") and row.get(METRIC)
    ]


def rerun_rows(page: Path, spec: Page) -> list[dict[str, Any]]:
    """The re-run's completed grid jobs, samples to 0.99 read from each job's curve."""
    found = []
    for folder in spec.reruns:
        if not (page / folder / "jobs").is_dir():
            continue
        for row in read_jobs(page / folder):
            if row.get(SAMPLES) is None:  # recorded before runs logged it: from the curve
                row[SAMPLES] = samples_to(job_curve(page / folder / "jobs", row), THRESHOLD, "max")
            found.append({"model": "grid2d", **row, PRIORITY: "none"})
    return found


def seeds_table(rows: list[dict[str, Any]], cell: str) -> list[str]:
    """Each (model, cell, priority) cell: test and validation exact-match per seed, and the
    median samples to validation 0.99 over the seeds that reached it."""
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["model"], int(r[cell]), r[PRIORITY], int(r["seed"]))):
        cells.setdefault((row["model"], int(row[cell]), row[PRIORITY]), []).append(row)
    lines = []
    for (model, size, priority), runs in cells.items():
        test = [float(r["test/acc"]) for r in runs]
        val = [float(r[METRIC]) for r in runs]
        reached = [s for r in runs if (s := number(r.get(SAMPLES))) is not None]
        spread = f" +- {statistics.stdev(val):.4f}" if len(val) > 1 else ""
        lines.append(
            [
                model,
                size,
                priority,
                " / ".join(f"{r['seed']}: {float(r['test/acc']):.3f}" for r in runs),
                f"{statistics.mean(test):.4f}",
                f"{statistics.mean(val):.4f}{spread}",
                (f"{statistics.median(reached):,.0f}" if reached else "-")
                + f" ({len(reached)}/{len(runs)})",
            ]
        )
    head = ["model", "depth" if cell == DEPTH else "digits", "priority"]
    head += ["seed: test exact-match", "test mean"]
    head += ["val exact-match mean +- std", "samples to val 0.99: median (reached)"]
    return pipe_table(head, lines)


def render(page: Path, spec: Page) -> str:
    """The restated verdicts of the page in folder ``page``."""
    original, rerun = page_rows(page, spec), rerun_rows(page, spec)
    if not rerun:
        raise SystemExit(f"{page}/{spec.reruns[0]}: no completed job of the re-run")
    stacked = [r for r in original if r["model"] not in GRIDS]
    grids_depth = [r for r in original if r["model"] in GRIDS]
    keys, within = ["model", spec.cell], [spec.cell] if spec.by_length else None
    grids, grid, ran = (
        ("the 2-LSTMs", "grid", "the grids")
        if spec.by_length
        else ("the tied 2-LSTM", "tied-grid", "the tied grid")
    )
    parts = [
        f"# {page.name}: the verdicts with {grids} at priority none\n",
        f"Every job of the page (depth priority for {ran}) "
        "and of the re-run (priority none), per seed:\n",
        *seeds_table(original + rerun, spec.cell),
        "",
    ]
    for metric, mode in spec.measures:
        named = f" on {metric}" if len(spec.measures) > 1 else ""
        parts += [
            f"## The restated verdicts{named} (the rule: the re-run's {grid} jobs in place of the "
            "depth-priority ones, the stacked LSTM unchanged)\n",
            report(stacked + rerun, keys, metric, mode, within=within, pairs=True, level=3),
            f"## The page's verdicts as they were{named} (depth priority), for comparison\n",
            report(stacked + grids_depth, keys, metric, mode, within=within, level=3),
        ]
    where = "length" if spec.by_length else "depth"
    parts += [
        f"## Outside the rule: {'each grid' if spec.by_length else ran}'s two priorities at "
        f"each {where}\n",
        report(
            grids_depth + rerun,
            ["model", PRIORITY, spec.cell],
            METRIC,
            "max",
            within=[spec.cell],
            level=3,
        ),
    ]
    return "\n".join(parts)


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """The report's file."""
    return {study.folder / entry["file"]: render(study.folder, Page.declared(entry))}

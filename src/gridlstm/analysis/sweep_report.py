"""Paper-shaped tables from a sweep (``python -m gridlstm.tables sweep=<multirun dir>``).

Collects every job's ``metrics.json`` and composed config (``.hydra/config.yaml``) and writes,
into the sweep directory, ``table.md`` and ``table.csv`` (model, layers, hidden, tied,
parameters, task size, the task's metrics: accuracy, bits/char, error rate or BLEU, samples to
threshold) with the paper's reference claim for the task alongside, and ``curves.png``: the
task's validation metric against training samples seen, one curve per job (from each job's
CSV log; run the sweep with ``logger=csv``).
A job whose ``metrics.json`` is missing or malformed is reported by name and left out.

Every override that differs between jobs (``.hydra/overrides.yaml``) gets a column. When the
jobs differ in ``seed``, the jobs of each cell (the same values of every other swept override)
are also summarised, mean +- std and n (`gridlstm.analysis.aggregate`): a second table in
``table.md``, ``table_seeds.csv``, and one mean curve with a band per cell.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

from gridlstm.analysis import aggregate, curve_figure, verdicts
from gridlstm.analysis.job_records import (
    BASE_COLUMNS,
    TableError,
    job_curve,
    read_job,
    read_table_csv,
    samples_to,
)
from gridlstm.analysis.markdown import pipe_table
from gridlstm.run import runs

# By the task's main metric (task.monitor): the columns worth a table.
METRIC_COLUMNS = {
    "acc": ["test/acc", "val/acc", "test/digit_acc"],
    "bpc": ["test/bpc", "val/bpc", "train/chars_per_s"],
    "error": ["test/error", "val/error"],
    "bleu": ["test/bleu", "val/bleu", "test/chrf", "test/ppl", "train/tokens_per_s"],
}
TAIL_COLUMNS = ["samples_seen", "val/samples_to_threshold"]
OPTIONAL_COLUMNS = ["macs_per_sample"]  # where the jobs record it (vector, algorithmic tasks)
STATUS_COLUMNS = ["status", "reason"]


def swept_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Overrides whose value differs between jobs (in first-seen order), seed last."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["overrides"] if k not in keys]
    varying = [k for k in keys if len({row["overrides"].get(k) for row in rows}) > 1]
    return [k for k in varying if k != "seed"] + (["seed"] if "seed" in varying else [])


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The base columns, the metric columns of the jobs' main metrics that some job has,
    and samples seen / to threshold."""
    metric_columns: list[str] = []
    for row in rows:
        for column in METRIC_COLUMNS.get(row["monitor"].split("/")[-1], [row["monitor"]]):
            if column not in metric_columns and any(column in r for r in rows):
                metric_columns.append(column)
    # Which runs were stopped early (interrupted, diverged) and why, when any was.
    stopped = [c for c in STATUS_COLUMNS if any(r["status"] != runs.COMPLETED for r in rows)]
    # a swept key that is a base column (``model``) is shown once, as the base column
    swept = [k for k in swept_keys(rows) if k not in BASE_COLUMNS]
    return (
        BASE_COLUMNS[:1]
        + swept
        + BASE_COLUMNS[1:]
        + metric_columns
        + [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
        + (TAIL_COLUMNS + stopped)
    )


def job_dirs(sweep: Path) -> list[Path]:
    jobs = [p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(
        jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name)
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if not math.isnan(value) else "nan"
    return str(value)


def value(row: dict[str, Any], column: str) -> Any:
    """A row's value for a column: a metric or field, else the job's override."""
    return row[column] if column in row else row["overrides"].get(column)


def markdown(rows: list[dict[str, Any]], extra: list[str] | None = None) -> str:
    names = columns(rows) + (extra or [])
    lines = pipe_table(names, ([_cell(value(row, c)) for c in names] for row in rows))
    claims = sorted({f"Paper: {row['paper']}" for row in rows if row.get("paper")})
    return "\n".join(lines + [""] + claims) + "\n"


def threshold_column(threshold: float) -> str:
    return f"val/samples_to_{threshold:g}"


def add_thresholds(sweep: Path, rows: list[dict[str, Any]], thresholds: list[float]) -> None:
    """Samples to each extra threshold, from each job's CSV log (None without a log)."""
    for row in rows:
        curve = job_curve(sweep, row)
        for threshold in thresholds:
            reached = samples_to(curve, threshold, row["monitor_mode"]) if curve else None
            row[threshold_column(threshold)] = reached


def curves(
    sweep: Path, rows: list[dict[str, Any]], out: Path, group_by: list[str] | None = None
) -> tuple[int, int]:
    """Plot the main validation metric against train/samples_seen (and, where every job
    records its multiply-adds a sample, against multiply-adds: `curve_figure`): one curve per
    job, or, when jobs differ in seed (``group_by``: the other swept keys), each cell's mean
    over its seeds, each seed thin beside it. Returns (curves, panels)."""
    groups: dict[str, curve_figure.Series] = {}
    for row in rows:
        xy = job_curve(sweep, row)
        stopped = row["status"] != runs.COMPLETED
        if not xy or (stopped and group_by is not None):
            continue
        if group_by is None:
            size = f"{row['size_option']}={row['size']}"
            label = f"{row['job']}: {row['model']} L={row['layers']} d={row['hidden']} {size}"
        else:
            label = " ".join(f"{k}={value(row, k)}" for k in group_by) or row["model"]
        macs = row.get("macs_per_sample")
        series = groups.setdefault(label, curve_figure.Series(label, [], macs))
        series.members.append(xy)
        if series.macs_per_sample != macs:  # a cell's jobs disagree: no per-mac axis for it
            series.macs_per_sample = None
    series = list(groups.values())
    ylabel = ", ".join(sorted({row["monitor"] for row in rows}))
    ylabel += " (mean over seeds; each seed thin)" if group_by else ""
    return curve_figure.draw(series, out, ylabel, sweep.name, banded=group_by is not None)


def build_tables(sweep: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of every usable job, and one problem line per job left out."""
    if not sweep.is_dir():
        raise TableError(f"{sweep}: not a directory")
    jobs = job_dirs(sweep)
    if not jobs:
        raise TableError(f"{sweep}: no job directories (sub-folders with .hydra/) found")
    rows, problems = [], []
    for job in jobs:
        try:
            rows.append(read_job(job))
        except ValueError as error:
            problems.append(str(error))
    if not rows:
        raise TableError(f"{sweep}: no job has a usable metrics.json:\n  " + "\n  ".join(problems))
    return rows, problems


def report(sweep: Path, thresholds: list[float] | None = None) -> None:
    """Write table.md, table.csv (and table_seeds.csv) and curves.png into ``sweep`` and print
    the table; raises `TableError` when no job is usable. ``thresholds``: also the samples
    seen when the main validation metric first reached each (from the CSV logs)."""
    rows, problems = build_tables(sweep)
    add_thresholds(sweep, rows, thresholds or [])
    extra = [threshold_column(t) for t in thresholds or []]
    table = markdown(rows, extra)
    names = columns(rows) + extra
    swept = swept_keys(rows)
    written = ["table.md", "table.csv"]
    group_by = None
    if "seed" in swept:  # cells of several seeds: mean +- std, n
        group_by = [k for k in swept if k != "seed"]
        summarised = [c for c in names if c.startswith(("test/", "val/", "train/"))]
        summarised += ["samples_seen"]
        flat = [{**row["overrides"], **row} for row in rows]
        cells, left_out = aggregate.summary(flat, group_by, summarised)
        table += (
            "\n## Over seeds\n\nMean +- sample std over the completed runs of each cell; "
            "n = completed / jobs.\n\n" + aggregate.markdown(cells, summarised, group_by)
        )
        table += "".join(f"\nnot averaged: {line}" for line in left_out) + (
            "\n" if left_out else ""
        )
        cells.to_csv(sweep / "table_seeds.csv", index=False)
        written.append("table_seeds.csv")
        monitor, mode = rows[0]["monitor"], rows[0]["monitor_mode"]
        (sweep / "verdicts.md").write_text(verdicts.report(flat, group_by, monitor, mode))
        written.append("verdicts.md")
    (sweep / "table.md").write_text(table)
    with (sweep / "table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows({c: value(row, c) for c in names} for row in rows)
    drawn, panels = curves(sweep, rows, sweep / "curves.png", group_by)
    print(table)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(
        f"wrote {sweep / 'table.md'}, {', '.join(written[1:])} and curves.png ({drawn} curves)"
        + (" against samples and multiply-adds" if panels == 2 else "")
    )


def verdicts_from_csv(
    table: Path,
    metric: str,
    mode: str,
    within: list[str] | None = None,
    name: str = "verdicts.md",
) -> Path:
    """``verdicts.md`` (or ``name``, so one table can hold verdicts on two metrics) beside a
    ``table.csv`` this command wrote (e.g. one a claims page keeps): the cells are its swept
    columns other than ``seed``; returns the path written."""
    rows, swept = read_table_csv(table, metric)
    group_by = [k for k in swept if k != "seed"]
    if Path(name).name != name or not name.endswith(".md"):
        raise TableError(f"out={name}: a file name ending in .md, written beside {table.name}")
    out = table.parent / name
    unknown = [k for k in within or [] if k not in group_by]
    if unknown:
        raise TableError(f"within={','.join(unknown)}: not a swept column; choose from {group_by}")
    out.write_text(verdicts.report(rows, group_by, metric, mode, within))
    return out

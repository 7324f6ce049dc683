"""Jobs of a sweep that differ only in ``seed``, summarised: mean +- std and n per metric.

Why: one seed per cell cannot tell signal from noise. A sweep such as
``-m model=grid2d,stacked_lstm model.net.num_layers=1,2,4 seed=1,2,3`` gives each
(model, layers) cell three runs; the summary reports each metric as mean +- sample std over
the completed runs, n, and for samples-to-threshold the median over the runs that reached the
threshold with how many did. Runs that did not complete (diverged, failed, interrupted) are
not averaged in; they are counted per cell and listed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from gridlstm.analysis.markdown import pipe_table
from gridlstm.run.runs import COMPLETED

THRESHOLD = "val/samples_to_threshold"


def is_threshold(metric: str) -> bool:
    """Samples-to-threshold columns (the run's own, and `tables`' ``thresholds=``): a median
    over the runs that reached it, with how many did, instead of mean +- std."""
    return metric.startswith("val/samples_to_")


def summary(
    rows: list[dict[str, Any]], group_by: list[str], metrics: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """One row per cell (the ``group_by`` values); and the runs left out, one line each."""
    frame = pd.DataFrame([{**{k: str(row.get(k, "")) for k in group_by}, **row} for row in rows])
    if "status" not in frame:
        frame["status"] = COMPLETED
    frame["status"] = frame["status"].fillna(COMPLETED)
    done = frame[frame["status"] == COMPLETED]
    left_out = [
        f"job {row['job']}: {row['status']}" + (f" ({row['reason']})" if row.get("reason") else "")
        for _, row in frame[frame["status"] != COMPLETED].iterrows()
    ]
    keys = group_by or ["_all"]
    if not group_by:
        frame, done = frame.assign(_all=""), done.assign(_all="")
    cells = frame.groupby(keys, sort=False).size().rename("jobs").to_frame()
    cells["n"] = done.groupby(keys, sort=False).size().reindex(cells.index).fillna(0).astype(int)
    for metric in metrics:
        if metric not in done or is_threshold(metric):
            continue
        values = pd.to_numeric(done[metric], errors="coerce")
        stats = values.groupby([done[k] for k in keys], sort=False).agg(["mean", "std"])
        cells[f"{metric} mean"] = stats["mean"]
        cells[f"{metric} std"] = stats["std"]
    for threshold in [m for m in dict.fromkeys([THRESHOLD, *metrics]) if is_threshold(m)]:
        if threshold not in done:
            continue
        reached = pd.to_numeric(done[threshold], errors="coerce")
        grouped = reached.groupby([done[k] for k in keys], sort=False)
        cells[f"{threshold} median"] = grouped.median()
        # a cell whose runs all failed or were interrupted has reached nothing (not NaN)
        cells[f"{threshold} reached"] = grouped.count().reindex(cells.index).fillna(0).astype(int)
    cells = cells.reset_index()
    return cells.drop(columns=["_all"], errors="ignore"), left_out


def markdown(cells: pd.DataFrame, metrics: list[str], group_by: list[str]) -> str:
    """The summary as a table: ``mean +- std`` cells, n, samples to threshold as
    ``median (reached/n)``."""
    header = [*group_by, "n"]
    shown = [m for m in metrics if f"{m} mean" in cells]
    header += shown
    thresholds = [
        m
        for m in dict.fromkeys([THRESHOLD, *metrics])
        if is_threshold(m) and f"{m} median" in cells
    ]
    header += [f"{t} (median, reached/n)" for t in thresholds]
    rows = []
    for _, cell in cells.iterrows():
        # (iterrows turns an all-numeric row into floats: counts are cast back)
        n = int(cell["n"])
        row = [str(cell[k]) for k in group_by] + [f"{n}/{int(cell['jobs'])}"]
        for metric in shown:
            mean, std = cell[f"{metric} mean"], cell[f"{metric} std"]
            if pd.isna(mean):
                row.append("-")
            else:
                row.append(f"{mean:.4f}" + ("" if pd.isna(std) else f" +- {std:.4f}"))
        for threshold in thresholds:
            median, reached = cell[f"{threshold} median"], cell[f"{threshold} reached"]
            shown_median = "-" if pd.isna(median) else f"{median:.0f}"
            row.append(f"{shown_median} ({int(reached)}/{n})")
        rows.append(row)
    return "\n".join(pipe_table(header, rows)) + "\n"

"""Verdicts of the deep tied investigation (docs/claims/deep_tied), with the claims' rule
(Welch's t-test, `gridlstm.analysis.verdicts`):

    python -m gridlstm.tables report=deep_tied

* Stage 2: the tied 2-LSTM's test exact-match by depth and priority, over the seeds stages 1
  (suspects/cpu: its seed-1 runs that change nothing but the priority) and 2 (priority/cpu)
  ran: priority_verdicts.md and priority_by_depth.csv.
* Stage 3: the issue's whole table, every model of stages 1-3 (table/cpu) that changes nothing
  but model, width, depth and priority, with parameters and multiply-adds per sample:
  table.md and table_verdicts.md (every pair of cells), once table/cpu exists.
* Stage 4: the depth axis at width 64, every family (stages 1-4's runs, depths/cpu): one row
  per family and priority, one column per depth, then each family's depths against each other:
  depths_verdicts.md, once depths/cpu exists.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.stages import read_jobs
from gridlstm.analysis.verdicts import cells, report

KEYS = ("model.net.num_layers", "model.net.priority")
# Stage 1's suspects that change something besides the priority: not this comparison's.
OTHER_CHANGES = ("model.net.forget_bias", "trainer.gradient_clip_val", "task.module.embedding_std")


def rows(folder: Path) -> list[dict]:
    found = []
    for stage in ("suspects", "priority"):
        for row in read_jobs(folder / stage / "cpu"):
            if row.get("model") != "grid2d" or any(key in row for key in OTHER_CHANGES):
                continue
            found.append({**row, "model.net.priority": row.get("model.net.priority", "depth")})
    return found


def render(folder: Path) -> tuple[str, str]:
    """(priority_verdicts.md, priority_by_depth.csv) from the jobs under ``folder``."""
    found = rows(folder)
    found.sort(key=lambda r: (int(r["model.net.num_layers"]), r["model.net.priority"]))
    lines = ["cell,n,mean,std,values"]
    for cell in cells(found, list(KEYS), "test/acc"):
        values = " ".join(f"{v:.3f}" for v in cell.values)
        lines.append(f'"{cell.name}",{cell.n},{cell.mean:.4f},{cell.std:.4f},{values}')
    text = report(found, list(KEYS), "test/acc", "max", within=["model.net.num_layers"])
    head = "# Tied 2-LSTM, test exact-match by depth and priority (stages 1 and 2)\n\n"
    return head + text, "\n".join(lines) + "\n"


TABLE_KEYS = ("model", "model.net.hidden_size", "model.net.num_layers", "model.net.priority")
SHORT = ("model", "width", "depth", "priority")  # the verdicts' cell names
# experiment=deep_tied's settings where a job left them alone: width 64 and, for the 2-LSTMs
# with a choice, depth priority (coreylynch's grid always runs depth priority; the stacked
# LSTM has none).
WIDTH = "64"
PRIORITY = {"grid2d": "depth", "grid2d_untied": "depth", "grid2d_coreylynch": "depth"}


STAGES = ("suspects", "priority", "table", "depths")


def table_rows(folder: Path) -> list[dict]:
    """Stages 1-4's runs that differ from experiment=deep_tied in model, width, depth and
    priority only, each with every key of `TABLE_KEYS` filled in."""
    found = []
    for stage in STAGES:
        if not (folder / stage / "cpu").is_dir():
            continue
        for row in read_jobs(folder / stage / "cpu"):
            if any(key in row for key in OTHER_CHANGES):
                continue
            found.append(
                {
                    **row,
                    "model.net.hidden_size": str(row.get("model.net.hidden_size", WIDTH)),
                    "model.net.priority": row.get(
                        "model.net.priority", PRIORITY.get(row["model"], "-")
                    ),
                }
            )
    return found


def short_names(rows: Iterable[dict]) -> list[dict]:
    """The rows with `SHORT`'s names beside `TABLE_KEYS`' (the verdicts' cell names)."""
    return [{**r, **{n: r[k] for n, k in zip(SHORT, TABLE_KEYS, strict=True)}} for r in rows]


def multiply_adds(row: dict) -> int:
    """``macs_per_sample`` as the job recorded it, or, for jobs run before runs recorded it,
    counted the way a run does (`gridlstm.analysis.counted_macs.count`) on the model composed
    from the job's settings (priority changes the order of the products, not their number)."""
    if row.get("macs_per_sample") is not None:
        return int(row["macs_per_sample"])
    from gridlstm.analysis.counted_macs import count

    keys = ("model", "model.net.hidden_size", "model.net.num_layers")
    counted = count(("experiment=deep_tied", *(f"{k}={row[k]}" for k in keys)))
    if counted is None:
        raise ValueError(
            f"no multiply-adds count for {row.get('job')}: its settings do not compose"
        )
    return counted[0]


def render_table(folder: Path) -> tuple[str, str]:
    """(table.md, table_verdicts.md): each cell's seeds, parameters and multiply-adds, and
    every pair of cells compared."""
    found = table_rows(folder)
    found.sort(
        key=lambda r: (
            r["model"] != "stacked_lstm",
            r["model"],
            int(r["model.net.hidden_size"]),
            int(r["model.net.num_layers"]),
            r["model.net.priority"],
            int(r["seed"]),
        )
    )
    by_cell: dict[tuple, list[dict]] = {}
    for row in found:
        by_cell.setdefault(tuple(row[k] for k in TABLE_KEYS), []).append(row)
    counted: dict[tuple, int] = {}
    lines = []
    for cell, runs in by_cell.items():
        shape = cell[:3]
        recorded = [r for r in runs if r.get("macs_per_sample") is not None]
        if shape not in counted:
            counted[shape] = multiply_adds(recorded[0] if recorded else runs[0])
        (params,) = {int(r["params"]) for r in runs}
        values = [float(r["test/acc"]) for r in runs]
        mean = statistics.mean(values)
        lines.append(
            [
                *cell,
                f"{params:,}",
                f"{counted[shape]:,}",
                ", ".join(f"{r['seed']}: {float(r['test/acc']):.3f}" for r in runs),
                f"{mean:.4f} +- {statistics.stdev(values):.4f}"
                if len(values) > 1
                else f"{mean:.4f}",
            ]
        )
    head = ["model", "width", "depth", "priority", "parameters", "multiply-adds per sample"]
    head += ["seed: test exact-match", "mean +- std"]
    table = "# Deep tied grids, the issue's table (stages 1-4)\n\n" + "\n".join(
        pipe_table(head, lines)
    )
    verdicts = report(short_names(found), list(SHORT), "test/acc", "max", pairs=True)
    return table + "\n", "# Deep tied grids, every pair of cells (stages 1-4)\n\n" + verdicts


FAMILY = ("model", "priority")


def render_depths(folder: Path) -> str:
    """depths_verdicts.md: at width 64, each family's test exact-match by depth (mean +- std
    over its seeds), then each family's depths compared with each other (every pair)."""
    found = short_names(r for r in table_rows(folder) if r["model.net.hidden_size"] == WIDTH)
    depths = sorted({int(r["depth"]) for r in found})
    families = sorted(
        {tuple(r[k] for k in FAMILY) for r in found}, key=lambda f: (f[0] != "stacked_lstm", f)
    )
    lines = []
    for family in families:
        line = list(family)
        for depth in depths:
            values = [
                float(r["test/acc"])
                for r in found
                if tuple(r[k] for k in FAMILY) == family and int(r["depth"]) == depth
            ]
            if not values:
                line.append("")
            elif len(values) == 1:
                line.append(f"{values[0]:.4f} (n = 1)")
            else:
                mean, std = statistics.mean(values), statistics.stdev(values)
                n = "" if len(values) == 3 else f" (n = {len(values)})"
                line.append(f"{mean:.4f} +- {std:.4f}{n}")
        lines.append(line)
    head = ["model", "priority", *(f"depth {d}" for d in depths)]
    text = "# Deep tied grids, test exact-match by depth at width 64 (stages 1-4)\n\n"
    text += "Mean +- std over seeds 1-3 (n = 3 unless stated).\n\n"
    text += "\n".join(pipe_table(head, lines)) + "\n\n"
    text += report(
        found, ["model", "priority", "depth"], "test/acc", "max", within=list(FAMILY), pairs=True
    )
    return text


def outputs(claims: Path) -> dict[Path, str]:
    """The files this report writes under ``claims/deep_tied``, with their text."""
    folder = claims / "deep_tied"
    if not (folder / "priority" / "cpu").is_dir():
        return {}
    md, table = render(folder)
    found = {folder / "priority_verdicts.md": md, folder / "priority_by_depth.csv": table}
    if (folder / "table" / "cpu").is_dir():
        md, verdicts = render_table(folder)
        found |= {folder / "table.md": md, folder / "table_verdicts.md": verdicts}
    if (folder / "depths" / "cpu").is_dir():
        found[folder / "depths_verdicts.md"] = render_depths(folder)
    return found

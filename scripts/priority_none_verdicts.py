"""A depth page's verdicts restated with the tied 2-LSTM run at priority none, by the rule its
re-run study fixed before it ran (scripts/cpu_studies.yaml: ``addition_depth_none``,
``memorization_depth_none``):

    python scripts/priority_none_verdicts.py docs/claims/addition_depth
    python scripts/priority_none_verdicts.py docs/claims/memorization_depth

The rule: the page's verdicts computed again with the re-run's tied-grid jobs
(``<page>/priority_none/cpu/jobs``) in place of the depth-priority tied grid of the page's
table, the stacked-LSTM jobs unchanged, by the claims' rule (Welch's test on validation
exact-match, `gridlstm.analysis.verdicts`). Writes ``<page>/priority_none/restated_verdicts.md``:
each cell's seeds under both priorities, the restated verdicts, and (outside the rule, for
the reader) each depth's two priorities compared.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path
from typing import Any

from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.stages import number, read_jobs
from gridlstm.analysis.tables import CURVE, read_table_csv, samples_to
from gridlstm.analysis.verdicts import report

# page -> the table.csv its verdicts were computed from (the depth-priority tied grid).
TABLES = {"addition_depth": "cpu/table.csv", "memorization_depth": "table.csv"}
METRIC, THRESHOLD = "val/acc", 0.99  # the pages' metric; both tasks' threshold (conf/task)
DEPTH, PRIORITY = "model.net.num_layers", "priority"
SAMPLES = "val/samples_to_threshold"  # samples seen at validation 0.99 (None: not reached)


def page_rows(page: Path) -> list[dict[str, Any]]:
    """The page's completed jobs (its table.csv), each with the priority it ran."""
    rows, _ = read_table_csv(page / TABLES[page.name])
    return [
        {**row, PRIORITY: "depth" if row["model"] == "grid2d" else "-"}
        for row in rows
        if row.get("status", "completed") in ("", "completed") and row.get(METRIC)
    ]


def rerun_rows(page: Path) -> list[dict[str, Any]]:
    """The re-run's completed tied-grid jobs, samples to 0.99 read from each job's curve."""
    found = []
    for row in read_jobs(page / "priority_none" / "cpu"):
        curve_file = page / "priority_none" / "cpu" / "jobs" / row["job"] / CURVE
        if row.get(SAMPLES) is None and curve_file.is_file():
            with curve_file.open() as handle:
                curve = [(float(r["samples"]), float(r["value"])) for r in csv.DictReader(handle)]
            row[SAMPLES] = samples_to(curve, THRESHOLD, "max")
        found.append({**row, "model": "grid2d", PRIORITY: "none"})
    return found


def seeds_table(rows: list[dict[str, Any]]) -> list[str]:
    """Each (model, depth, priority) cell: test and validation exact-match per seed, and the
    median samples to validation 0.99 over the seeds that reached it."""
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["model"], int(r[DEPTH]), r[PRIORITY], int(r["seed"]))):
        cells.setdefault((row["model"], int(row[DEPTH]), row[PRIORITY]), []).append(row)
    lines = []
    for (model, depth, priority), runs in cells.items():
        test = [float(r["test/acc"]) for r in runs]
        val = [float(r[METRIC]) for r in runs]
        reached = [s for r in runs if (s := number(r.get(SAMPLES))) is not None]
        spread = f" +- {statistics.stdev(val):.4f}" if len(val) > 1 else ""
        lines.append(
            [
                model,
                depth,
                priority,
                " / ".join(f"{r['seed']}: {float(r['test/acc']):.3f}" for r in runs),
                f"{statistics.mean(test):.4f}",
                f"{statistics.mean(val):.4f}{spread}",
                (f"{statistics.median(reached):,.0f}" if reached else "-")
                + f" ({len(reached)}/{len(runs)})",
            ]
        )
    head = ["model", "depth", "priority", "seed: test exact-match", "test mean"]
    head += ["val exact-match mean +- std", "samples to val 0.99: median (reached)"]
    return pipe_table(head, lines)


def render(page: Path) -> str:
    """``priority_none/restated_verdicts.md`` of ``page``."""
    original, rerun = page_rows(page), rerun_rows(page)
    if not rerun:
        raise SystemExit(f"{page}/priority_none/cpu: no completed job of the re-run")
    stacked = [r for r in original if r["model"] != "grid2d"]
    tied_depth = [r for r in original if r["model"] == "grid2d"]
    keys = ["model", DEPTH]
    parts = [
        f"# {page.name}: the verdicts with the tied 2-LSTM at priority none\n",
        "Every job of the page (depth priority for the tied grid) and of the re-run (priority "
        "none), per seed:\n",
        *seeds_table(original + rerun),
        "",
        "## The restated verdicts (the rule: the re-run's tied-grid jobs in place of the "
        "depth-priority ones, the stacked LSTM unchanged)\n",
        report(stacked + rerun, keys, METRIC, "max", pairs=True),
        "## The page's verdicts as they were (depth priority), for comparison\n",
        report(stacked + tied_depth, keys, METRIC, "max"),
        "## Outside the rule: the tied grid's two priorities at each depth\n",
        report(tied_depth + rerun, ["model", PRIORITY, DEPTH], METRIC, "max", within=[DEPTH]),
    ]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or Path(argv[0]).name not in TABLES:
        print(f"usage: priority_none_verdicts.py docs/claims/<{'|'.join(TABLES)}>")
        return 2
    page = Path(argv[0])
    out = page / "priority_none" / "restated_verdicts.md"
    out.write_text(render(page))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

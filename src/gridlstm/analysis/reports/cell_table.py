"""Cells of runs gathered over a study's stages, each cell's seeds, parameters and
multiply-adds a sample (``file``), and every pair of cells compared by the claims' rule
(Welch's t-test, `gridlstm.analysis.verdicts`; ``verdicts_file``). Declared as a report
(kind ``cell_table``).

Why not a declared table: jobs run before runs recorded their multiply-adds get them counted
here on the composed model (``compose``, ``shape_keys``; `gridlstm.analysis.counted_macs`).

The runs (``records``): the completed jobs of those folders, less those that set a key of
``exclude`` (a change that is not this comparison's); a key a job left alone takes its value
from ``model_defaults`` (by model) or ``defaults``; ``where`` then keeps the runs whose keys
have those values. ``names`` gives the verdicts' short name of each of ``keys``. Keys:
``file``, ``records``, ``keys``, ``metric`` (``mode``: max unless min), ``title``, ``names``,
``verdicts_file``, ``verdicts_title``, ``metric_label`` (the seeds column's header),
``shape_keys``; optional ``exclude``, ``defaults``, ``model_defaults``, ``where``, ``intro``
(a string, or a list of lines), ``compose`` and ``first`` (the ``keys[0]`` value listed first).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gridlstm.analysis.counted_macs import count
from gridlstm.analysis.declared import Study
from gridlstm.analysis.job_records import read_jobs
from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.record_tables import matches_where
from gridlstm.analysis.verdicts import report

REQUIRED = {"file", "records", "keys", "metric", "title", "names", "verdicts_file"}
REQUIRED |= {"verdicts_title", "metric_label", "shape_keys"}
OPTIONAL = {"exclude", "defaults", "model_defaults", "where", "mode", "intro", "compose", "first"}


def rows(study: Study, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs the entry reads (the module's docstring), their left-alone keys filled in."""
    defaults, by_model = entry.get("defaults", {}), entry.get("model_defaults", {})
    found = []
    for records in entry["records"]:
        if not (study.folder / records).is_dir():
            continue
        for row in read_jobs(study.folder / records):
            if any(key in row for key in entry.get("exclude", [])):
                continue
            own = by_model.get(row.get("model"), {})
            filled = {k: str(row.get(k, own.get(k, v))) for k, v in {**defaults, **own}.items()}
            row = {**row, **filled}
            if matches_where(row, entry.get("where", {})):
                found.append(row)
    return found


def intro(entry: dict[str, Any]) -> str:
    """The text under the title: ``intro`` as one string or a list of lines, then a blank."""
    given = entry.get("intro") or []
    lines = [given] if isinstance(given, str) else list(given)
    return "".join(f"{line}\n" for line in lines) + ("\n" if lines else "")


def _order(value: Any) -> tuple[int, Any]:
    """Numbers by value, before words."""
    text = str(value)
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def short_names(entry: dict[str, Any], found: Iterable[dict]) -> list[dict]:
    """The rows with the short ``names`` beside the ``keys`` (the verdicts' cell names)."""
    pairs = list(zip(entry["names"], entry["keys"], strict=True))
    return [{**r, **{name: r[key] for name, key in pairs}} for r in found]


def multiply_adds(entry: dict[str, Any], row: dict) -> int:
    """``macs_per_sample`` as the job recorded it, or, for jobs run before runs recorded it,
    counted the way a run does (`gridlstm.analysis.counted_macs.count`) on the model composed
    from ``compose`` and the job's ``shape_keys``."""
    if row.get("macs_per_sample") is not None:
        return int(row["macs_per_sample"])
    given = (*entry.get("compose", []), *(f"{k}={row[k]}" for k in entry["shape_keys"]))
    counted = count(given)
    if counted is None:
        raise ValueError(
            f"no multiply-adds count for {row.get('job')}: its settings do not compose"
        )
    return counted[0]


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """``file``: each cell's seeds, parameters and multiply-adds; ``verdicts_file``: every pair
    of cells compared."""
    keys, metric = list(entry["keys"]), entry["metric"]
    first = entry.get("first")
    found = sorted(
        rows(study, entry),
        key=lambda r: (r[keys[0]] != first, *(_order(r[k]) for k in keys), int(r["seed"])),
    )
    by_cell: dict[tuple, list[dict]] = {}
    for row in found:
        by_cell.setdefault(tuple(row[k] for k in keys), []).append(row)
    shape_at = [keys.index(k) for k in entry["shape_keys"]]
    counted: dict[tuple, int] = {}
    lines = []
    for cell, runs in by_cell.items():
        shape = tuple(cell[i] for i in shape_at)
        recorded = [r for r in runs if r.get("macs_per_sample") is not None]
        if shape not in counted:
            counted[shape] = multiply_adds(entry, recorded[0] if recorded else runs[0])
        (params,) = {int(r["params"]) for r in runs}
        values = [float(r[metric]) for r in runs]
        mean = statistics.mean(values)
        lines.append(
            [
                *cell,
                f"{params:,}",
                f"{counted[shape]:,}",
                ", ".join(f"{r['seed']}: {float(r[metric]):.3f}" for r in runs),
                f"{mean:.4f} +- {statistics.stdev(values):.4f}"
                if len(values) > 1
                else f"{mean:.4f}",
            ]
        )
    head = [*entry["names"], "parameters", "multiply-adds per sample"]
    head += [f"seed: {entry['metric_label']}", "mean +- std"]
    table = f"# {entry['title']}\n\n" + intro(entry) + "\n".join(pipe_table(head, lines))
    names, mode = list(entry["names"]), entry.get("mode", "max")
    verdicts = report(short_names(entry, found), names, metric, mode, pairs=True)
    return {
        study.folder / entry["file"]: table + "\n",
        study.folder / entry["verdicts_file"]: f"# {entry['verdicts_title']}\n\n" + verdicts,
    }

"""Cells of runs gathered over a study's stages, and every pair of them compared by the
claims' rule (Welch's t-test, `gridlstm.analysis.verdicts`): three report kinds on one way of
reading the runs.

* ``seed_verdicts``: the verdicts between the cells of ``keys`` (``file``) and each cell's
  values (``table``, a csv).
* ``cell_table``: each cell's seeds, parameters and multiply-adds a sample (``file``), and
  every pair of cells compared (``verdicts_file``).
* ``depth_pivot``: one row per ``family``, one column per ``depth``, then each family's depths
  against each other (``file``).

The runs (each kind's ``records``): the completed jobs of those folders, less those that set a
key of ``exclude`` (a change that is not this comparison's); a key a job left alone takes its
value from ``model_defaults`` (by model) or ``defaults``; ``where`` then keeps the runs whose
keys have those values. ``names`` gives the verdicts' short name of each of ``keys``.

Keys of every kind: ``file``, ``records``, ``keys``, ``metric`` (``mode``: max unless min),
``title``; optional ``exclude``, ``defaults``, ``model_defaults``, ``where``, ``intro`` (text
under the title: a string, or a list of lines). ``seed_verdicts`` adds ``table`` and
optionally ``within`` (keys held fixed: cells compared at each of their values).
``cell_table`` adds ``names``, ``verdicts_file``, ``verdicts_title``, ``metric_label`` (the
seeds column's header), ``shape_keys`` (the keys that fix the multiply-adds a sample) and
optionally ``compose`` (a preset the multiply-adds of a job that did not record them are
counted on) and ``first`` (the ``keys[0]`` value listed first). ``depth_pivot`` adds
``names``, ``family`` (the short names of the row keys, a list) and ``depth`` (the short name
of the column key), optionally ``first`` and ``n`` (the usual seed count, left unstated).
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
from gridlstm.analysis.verdicts import cells, report

COMMON = frozenset({"file", "records", "keys", "metric", "title"})
READ = frozenset({"exclude", "defaults", "model_defaults", "where", "mode", "intro"})
SEED_REQUIRED, SEED_OPTIONAL = COMMON | {"table"}, READ | {"within"}
REQUIRED = COMMON | {"names", "verdicts_file", "verdicts_title", "metric_label", "shape_keys"}
OPTIONAL = READ | {"compose", "first"}
PIVOT_REQUIRED, PIVOT_OPTIONAL = COMMON | {"names", "family", "depth"}, READ | {"first", "n"}


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


def seed_outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """``file``: the verdicts between the cells of ``keys``; ``table``: each cell's values."""
    keys, metric, mode = list(entry["keys"]), entry["metric"], entry.get("mode", "max")
    found = sorted(rows(study, entry), key=lambda r: [_order(r[k]) for k in keys])
    lines = ["cell,n,mean,std,values"]
    for cell in cells(found, keys, metric):
        values = " ".join(f"{v:.3f}" for v in cell.values)
        lines.append(f'"{cell.name}",{cell.n},{cell.mean:.4f},{cell.std:.4f},{values}')
    text = report(found, keys, metric, mode, within=entry.get("within"))
    return {
        study.folder / entry["file"]: f"# {entry['title']}\n\n" + intro(entry) + text,
        study.folder / entry["table"]: "\n".join(lines) + "\n",
    }


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


def pivot_outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """``file``: each family's ``metric`` by depth (mean +- std over its seeds, n given where
    it is not ``n``), then each family's depths compared with each other (every pair)."""
    found = short_names(entry, rows(study, entry))
    family, depth, metric = list(entry["family"]), entry["depth"], entry["metric"]
    first, usual = entry.get("first"), entry.get("n")
    depths = sorted({int(r[depth]) for r in found})
    families = sorted(
        {tuple(r[k] for k in family) for r in found}, key=lambda f: (f[0] != first, f)
    )
    lines = []
    for one in families:
        line = list(one)
        for at in depths:
            values = [
                float(r[metric])
                for r in found
                if tuple(r[k] for k in family) == one and int(r[depth]) == at
            ]
            if not values:
                line.append("")
            elif len(values) == 1:
                line.append(f"{values[0]:.4f} (n = 1)")
            else:
                mean, std = statistics.mean(values), statistics.stdev(values)
                n = "" if len(values) == usual else f" (n = {len(values)})"
                line.append(f"{mean:.4f} +- {std:.4f}{n}")
        lines.append(line)
    head = [*family, *(f"{depth} {d}" for d in depths)]
    text = f"# {entry['title']}\n\n" + intro(entry)
    text += "\n".join(pipe_table(head, lines)) + "\n\n"
    keys = [*family, depth]
    text += report(found, keys, metric, entry.get("mode", "max"), within=family, pairs=True)
    return {study.folder / entry["file"]: text}

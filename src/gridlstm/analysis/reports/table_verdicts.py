"""The verdicts between the rows of a declared table (`gridlstm.analysis.record_tables`): each
row (with its ``across`` value) is a cell of runs, compared by the claims' rule (Welch's
t-test, `gridlstm.analysis.verdicts`). Declared as a report (kind ``verdicts``)::

    depths:
      kind: verdicts
      table: depths               # a table of the study's tables:; its rows are the cells
      file: depths_verdicts.md
      title: Each family's best depth against the others'
      metric: test/acc            # mode: max unless min
      cells: [model, model.net.num_layers]   # the keys naming a cell (default: every row key)
      where: {model: grid2d}      # optional: which rows
      within: [model]             # optional: cells compared at each of these keys' values
      best_of: [model]            # optional: only each group's best cell (best mean of those
                                  # with the group's most runs), compared with each other
      pairs: true                 # optional: every pair too, where there are more than two

Why over a declared table: the page shows the table and the file its verdicts, so both read
the same runs by the same rows and cannot disagree about a cell. A cell is named by the
table's headers and the records' values (``depth=4, priority=none``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridlstm.analysis.declared import Study
from gridlstm.analysis.record_tables import matches_where, ordered_groups
from gridlstm.analysis.verdicts import cell_name, cells, report
from gridlstm.run.errors import ConfigError

REQUIRED = {"file", "table", "title", "metric"}
OPTIONAL = {"intro", "mode", "cells", "where", "within", "best_of", "pairs"}


def check(entry: dict[str, Any]) -> None:
    if entry.get("mode", "max") not in ("max", "min"):
        raise ValueError(f"mode={entry['mode']!r}: choose one of max, min")
    if entry.get("within") and entry.get("best_of"):
        raise ValueError("within: and best_of: do not go together (one file, one way to group)")


def _headers(spec: Any) -> dict[str, str]:
    """Each row key's header, and the ``across`` key's without its ``{}``."""
    across, head = spec.across
    return {**spec.rows, **({across: head.replace("{}", "").strip()} if across else {})}


def runs_by_cell(study: Study, entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each run of the table's rows as ``{header: value, ..., metric: value}``, and the headers
    that name a cell."""
    where = study.folder / "study.yaml"
    if entry["table"] not in study.tables:
        raise ConfigError(
            f"{where}: reports: a verdicts report reads table {entry['table']!r}, which "
            f"tables: does not declare; valid: {', '.join(study.tables)}"
        )
    spec = study.tables[entry["table"]]
    headers = _headers(spec)
    named = list(entry.get("cells") or headers)
    asked = [*named, *entry.get("within", []), *entry.get("best_of", [])]
    if unknown := [k for k in asked if k not in headers]:
        raise ConfigError(
            f"{where}: reports: {unknown[0]!r} is not a key of table {spec.name}'s rows; "
            f"valid: {', '.join(headers)}"
        )
    found, seen = [], {}
    for key, group in ordered_groups(study.folder, spec):
        values = dict(zip([*spec.rows, spec.across[0]], key, strict=True))
        if not matches_where(values, entry.get("where", {})):
            continue
        name = tuple(values[k] for k in named)
        if seen.setdefault(name, key) != key:
            raise ConfigError(
                f"{where}: reports: two rows of table {spec.name} are the cell "
                f"{', '.join(name)}: add the key they differ in to cells:"
            )
        cell = {headers[k]: values[k] for k in named}
        found += [{**cell, entry["metric"]: run.get(entry["metric"])} for run in group]
    return found, [headers[k] for k in named]


def best_cells(
    found: list[dict[str, Any]], names: list[str], metric: str, mode: str, groups: list[str]
) -> list[dict[str, Any]]:
    """The runs of each group's best cell: the best mean among the cells with the group's
    most runs, so that a cell stopped early is not chosen on fewer seeds than the others."""
    by_group: dict[tuple, list[dict[str, Any]]] = {}
    for row in found:
        by_group.setdefault(tuple(row[g] for g in groups), []).append(row)
    kept = []
    for rows in by_group.values():
        candidates = cells(rows, names, metric)
        most = max(c.n for c in candidates)
        pick = max if mode == "max" else min
        best = pick((c for c in candidates if c.n == most), key=lambda c: c.mean)
        kept += [r for r in rows if cell_name(r, names) == best.name]
    return kept


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """The report's file: its title, intro and the verdicts."""
    found, names = runs_by_cell(study, entry)
    metric, mode = entry["metric"], entry.get("mode", "max")
    headers = _headers(study.tables[entry["table"]])
    if groups := [headers[k] for k in entry.get("best_of", [])]:
        found = best_cells(found, names, metric, mode, groups)
    within = [headers[k] for k in entry.get("within", [])]
    text = report(found, names, metric, mode, within=within, pairs=entry.get("pairs", False))
    given = entry.get("intro") or []
    intro = "".join(f"{line}\n" for line in ([given] if isinstance(given, str) else given))
    head = f"# {entry['title']}\n\n" + intro + ("\n" if intro else "")
    return {study.folder / entry["file"]: head + text}

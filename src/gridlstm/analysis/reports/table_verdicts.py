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
      show_table: true            # optional: the table itself under the title
      parts:                      # optional: several verdicts in one file, each under its
        - {heading: ..., where: ...}  # heading; a part's keys replace the report's own

Why over a declared table: the page shows the table and the file its verdicts, so both read
the same runs by the same rows and cannot disagree about a cell. A cell is named by the
table's headers and the records' values (``depth=4, priority=none``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridlstm.analysis.declared import Study
from gridlstm.analysis.record_tables import TableSpec, matches_where, ordered_groups, render
from gridlstm.analysis.verdicts import cell_name, cells, report
from gridlstm.run.errors import ConfigError

NAME = "_name"  # the entry's name under reports: (`reports.parse_reports` adds it), for errors
REQUIRED = {"file", "table", "title", "metric"}
PART = {"metric", "mode", "cells", "where", "within", "best_of", "pairs"}
OPTIONAL = PART | {"intro", "show_table", "parts"}


def check(entry: dict[str, Any]) -> None:
    """The entry's parts and each part's keys as the report reads them (ValueError: what)."""
    parts = entry.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ValueError(
            "parts: a list of {heading: ...}, each with any of " + ", ".join(sorted(PART))
        )
    for part in parts:
        if unknown := sorted(set(part) - PART - {"heading"}):
            raise ValueError(
                f"parts: unknown key {unknown[0]!r}; valid: heading, {', '.join(sorted(PART))}"
            )
        if "heading" not in part:
            raise ValueError("parts: each part needs a heading:")
    for part in [entry, *({**entry, **p} for p in parts)]:
        if part.get("mode", "max") not in ("max", "min"):
            raise ValueError(f"mode={part['mode']!r}: choose one of max, min")
        if part.get("within") and part.get("best_of"):
            raise ValueError("within: and best_of: do not go together (one way to group)")


def _headers(spec: TableSpec) -> dict[str, str]:
    """Each row key's header, and the ``across`` key's without its ``{}``."""
    across, head = spec.across
    return {**spec.rows, **({across: head.replace("{}", "").strip()} if across else {})}


def _where(study: Study, entry: dict[str, Any]) -> str:
    """Where an error is: the study's file and the report's entry."""
    return f"{study.folder / 'study.yaml'}: reports.{entry.get(NAME)}"


def table_of(study: Study, entry: dict[str, Any]) -> TableSpec:
    """The declared table the report reads (a `record_tables.TableSpec`)."""
    if entry["table"] not in study.tables:
        raise ConfigError(
            f"{_where(study, entry)}: reads table {entry['table']!r}, which tables: does not "
            f"declare; valid: {', '.join(study.tables)}"
        )
    return study.tables[entry["table"]]


def runs_by_cell(study: Study, entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each run of the table's rows as ``{header: value, ..., metric: value}``, and the headers
    that name a cell."""
    where = _where(study, entry)
    spec = table_of(study, entry)
    headers = _headers(spec)
    within = [k for k in entry.get("within", []) if k not in (entry.get("cells") or headers)]
    named = [*within, *(entry.get("cells") or headers)]  # a cell's keys, those held first
    asked = [*named, *entry.get("within", []), *entry.get("best_of", [])]
    if unknown := [k for k in asked if k not in headers]:
        raise ConfigError(
            f"{where}: {unknown[0]!r} is not a key of table {spec.name}'s rows; "
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
                f"{where}: two rows of table {spec.name} are the cell "
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


def verdicts(study: Study, entry: dict[str, Any], level: int) -> str:
    """One part's verdicts (the report's own keys with the part's)."""
    found, names = runs_by_cell(study, entry)
    metric, mode = entry["metric"], entry.get("mode", "max")
    headers = _headers(study.tables[entry["table"]])
    if groups := [headers[k] for k in entry.get("best_of", [])]:
        found = best_cells(found, names, metric, mode, groups)
    within = [headers[k] for k in entry.get("within", [])]
    return report(found, names, metric, mode, within, entry.get("pairs", False), level)


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """The report's file: its title, intro, the table where asked, and the verdicts."""
    given = entry.get("intro") or []
    spec = table_of(study, entry)
    named = ", ".join(f"{raw}: {shown}" for raw, shown in spec.names.items() if raw != shown)
    lines = [
        f"# {entry['title']}",
        "",
        f"A cell is a row of the study's table `{spec.name}` (study.yaml), named by its "
        "headers and the runs' own values" + (f" ({named})." if named else "."),
        "",
        *([given] if isinstance(given, str) else given),
    ]
    if entry.get("show_table"):
        lines += ["", *render(study.folder, spec)]
    head = "\n".join(lines).rstrip("\n") + "\n\n"
    if not entry.get("parts"):
        return {study.folder / entry["file"]: head + verdicts(study, entry, 2)}
    parts = [f"## {p['heading']}\n\n" + verdicts(study, {**entry, **p}, 3) for p in entry["parts"]]
    return {study.folder / entry["file"]: head + "\n".join(parts)}

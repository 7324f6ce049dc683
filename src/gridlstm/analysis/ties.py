"""Numbers a person writes in a page's prose, each tied to the one cell it comes from.

Why: a number typed into prose drifts, and checking it against "any number in the folder"
(membership) passes a p-value changed twenty-fold. A tied number is a markdown link whose
target is the record and whose title names the cell, so a reader can click through to it and
``python -m gridlstm.tables check=true`` reads the cell and compares::

    [0.9993 +- 0.0012](table_seeds.csv "cell model=grid2d layers=4: test/acc mean +- test/acc std")
    [3.20%](table_seeds.csv "cell model=grid3d: test/error mean")
    [4,000](../../../conf/experiment/claims_mnist.yaml "key trainer.max_steps")
    [2011 s](equal_compute2/confirm/cpu/queue.json "key jobs.0.seconds")

``cell <key>=<value> ...: <column>[ +- <column>]`` picks the one row of a CSV file (or of
the first pipe table of a markdown file, such as a verdicts.md) whose fields have those
values (``against='model=grid2d, depth=4'``: a value with spaces),
``cell table 2 <key>=<value>: p`` reads a markdown file's second table. A row is named
by its values, never by its position: a row number would pass for another row that happens
to hold the same value. It reads the named columns (a repeated header
name: its first column; a markdown cell may hold several numbers, "1.8604 +- 0.0172");
``key <a.b.0.c>`` walks a JSON or YAML file. Each number shown is compared at the
precision it is shown with: 0.9993 holds for 0.99934, not for 0.9996; 3.20% for 0.0320; 4,000
for 4000 only. Several numbers are tied in one link only with as many columns.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gridlstm.analysis.job_records import load_yaml
from gridlstm.analysis.markdown import cells

# [shown](target "cell ..." | "key ...")
TIE = re.compile(r'\[([^\]]+)\]\(([^)\s]+) "((?:cell|key) [^"]+)"\)')
SHOWN_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?%?")
SELECTOR = re.compile(r"(\S+?)=(?:'([^']*)'|(\S+))")  # key=value or key='a value, with spaces'


@dataclass(frozen=True)
class Tie:
    shown: str
    target: str
    address: str
    line: int  # 1-based


def ties(lines: list[str]) -> list[Tie]:
    return [
        Tie(m.group(1), m.group(2), m.group(3), i + 1)
        for i, line in enumerate(lines)
        for m in TIE.finditer(line)
    ]


def without_ties(line: str) -> str:
    """The line with each tied number taken out: what is left must hold no typed result."""
    return TIE.sub("", line)


def agrees(value: float, shown: str) -> bool:
    """Whether ``value`` shows as ``shown`` at the precision ``shown`` is written with."""
    text = shown.replace(",", "")
    if text.endswith("%"):
        text, value = text[:-1], value * 100
    if "e" in text:
        mantissa, _ = text.split("e")
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return f"{value:.{digits}e}" == f"{float(text):.{digits}e}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return not math.isnan(value) and f"{value:.{decimals}f}" == f"{float(text):.{decimals}f}"


def _rows(path: Path, table: int) -> list[list[str]]:
    """A CSV file's rows, or those of a markdown file's n-th pipe table (its rule left out)."""
    if path.suffix != ".md":
        with path.open(newline="") as handle:
            return list(csv.reader(handle))
    tables: list[list[list[str]]] = []
    previous = False
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            if not previous:
                tables.append([])
            tables[-1].append(cells(line))
        previous = line.startswith("|")
    if not 1 <= table <= len(tables):
        raise LookupError(f"no table {table}: the file has {len(tables)}")
    return tables[table - 1][:1] + tables[table - 1][2:]


def _table_cells(path: Path, address: str) -> list[str]:
    selector, _, columns = address.removeprefix("cell ").rpartition(":")
    table = 1
    if (which := re.match(r"\s*table (\d+)", selector)) is not None:
        table, selector = int(which.group(1)), selector[which.end() :]
    header, *rows = _rows(path, table) or [[]]
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    names = [columns.strip()] if columns.strip() in index else columns.split(" +- ")
    names = [n.strip() for n in names]
    wanted = {k: quoted or bare for k, quoted, bare in SELECTOR.findall(selector)}
    missing = [k for k in [*wanted, *names] if k not in index]
    if missing or not names[0] or not wanted:
        what = f"no column {missing[0]!r}" if missing else "no <key>=<value> or no column"
        raise LookupError(f"{what}; columns: {header}")
    chosen = [r for r in rows if all(_same(r[index[k]], v) for k, v in wanted.items())]
    if len(chosen) != 1:
        raise LookupError(f"{len(chosen)} rows have {selector.strip()!r} (one must)")
    return [n for name in names for n in SHOWN_NUMBER.findall(chosen[0][index[name]])] or [
        chosen[0][index[name]] for name in names
    ]


def _same(field: str, wanted: str) -> bool:
    if field == wanted:
        return True
    try:
        return float(field) == float(wanted)
    except ValueError:
        return False


def _key_cell(path: Path, address: str) -> list[str]:
    data: Any = (
        json.loads(path.read_text()) if path.suffix == ".json" else load_yaml(path.read_text())
    )
    for part in address.removeprefix("key ").strip().split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise LookupError(f"no key {part!r} on the way to {address.removeprefix('key ')!r}")
    return [str(data)]


def problem(tie: Tie, page: Path) -> str | None:
    """None if the tied numbers are what the cell gives; else one line naming both."""
    where = f"{page}:{tie.line}: {tie.shown!r} tied to {tie.target} ({tie.address})"
    path = page.parent / tie.target
    if not path.is_file():
        return f"{where}: no such file"
    try:
        cells = (_table_cells if tie.address.startswith("cell ") else _key_cell)(path, tie.address)
    except (LookupError, ValueError, yaml.YAMLError) as error:  # IndexError too: a short row
        return f"{where}: {error}"
    shown = SHOWN_NUMBER.findall(tie.shown)
    if len(shown) != len(cells):
        return f"{where}: shows {len(shown)} number(s) for {len(cells)} cell(s)"
    for number, cell in zip(shown, cells, strict=True):
        try:
            value = float(cell.replace(",", "").removesuffix("%"))
            value /= 100 if cell.endswith("%") else 1
        except ValueError:
            return f"{where}: the cell holds {cell!r}, not a number"
        if not agrees(value, number):
            return f"{where}: the page says {number}, the cell gives {cell}"
    return None

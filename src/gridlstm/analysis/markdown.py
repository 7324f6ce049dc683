"""The one pipe-table writer behind every table the suite writes for a page (tables,
summaries, verdicts, stage choices, frontiers), so that they all read alike, and its reader
(`cells`, `differing_cell`) for the checks that compare a page with its records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def pipe_table(head: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table's lines: the header, the rule and one line per row (cells as text)."""
    lines = [_line(head), "|" + "---|" * len(head)]
    return lines + [_line(row) for row in rows]


def _line(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def cells(line: str) -> list[str]:
    """A pipe-table line's cells, stripped (the inverse of a `pipe_table` line)."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def differing_cell(line: str, other: str) -> str:
    """The first table cell (or, outside a table, the first word) in which the lines differ."""
    sep = "|" if line.lstrip().startswith("|") else " "
    for a, b in zip(line.split(sep), other.split(sep), strict=False):
        if a != b:
            return a.strip()
    return line.strip()

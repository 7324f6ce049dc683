"""The one pipe-table writer behind every table the suite writes for a page (tables,
summaries, verdicts, stage choices, frontiers), so that they all read alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def pipe_table(head: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table's lines: the header, the rule and one line per row (cells as text)."""
    lines = [_line(head), "|" + "---|" * len(head)]
    return lines + [_line(row) for row in rows]


def _line(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"

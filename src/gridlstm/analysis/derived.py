"""The derived tables committed beside the claims pages, each rendered again from the records
it was derived from and compared with the committed file.

Why: the pages link into these files (a stage's ``table.md``, ``verdicts.md``,
``choices.md``, a frontier's and a rate check's tables), so a number edited in one by hand
would pass for evidence. Every markdown file under ``docs/claims`` but the pages is one of
the kinds below (`KINDS`), or a study report (`gridlstm.analysis.reports`, checked by
`gridlstm.analysis.pages`); a file of no kind is a problem too, so none goes unchecked. Raw
records (``table.csv``, ``metrics.json``, ``curve.csv``, ``queue.json``) are the sources and
stay as written.

A ``table.md`` (`gridlstm.analysis.sweep_report.report`) is compared cell by cell: its first table
against ``table.csv`` (a number shown at 4 decimals, as the table prints it, or as the
override was written) and its "Over seeds" table against the seeds aggregated again from
``table.csv``. The others are rendered again in full by the code that wrote them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

from gridlstm.analysis import aggregate, verdicts
from gridlstm.analysis.frontier import (
    AS_RAN,
    SOURCES,
    Ladder,
    cells_verdicts,
    csv_text,
    frontiers,
    markdown,
    sources_of,
    verdicts_markdown,
)
from gridlstm.analysis.job_records import TableError, read_jobs, read_table_csv
from gridlstm.analysis.lr_check import (
    best_rate_cells,
    best_rate_frontiers,
    best_rate_intro,
    best_rate_sources,
)
from gridlstm.analysis.markdown import cells, differing_cell
from gridlstm.analysis.stages import CHOICES_HEAD, choices_markdown
from gridlstm.run.runs import COMPLETED

BEST = re.compile(r"^(?:Best cell by mean (\S+) \((max|min)\)|No two cells of (\S+) to compare)")
OVER_SEEDS = "## Over seeds"


def _table(lines: list[str], start: int) -> list[int]:
    """Indexes of the pipe table's lines that begins at or after ``start``."""
    first = next((i for i in range(start, len(lines)) if lines[i].startswith("|")), len(lines))
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return list(range(first, end))


def _shown(cell: str, recorded: str) -> bool:
    """A table.md cell against its table.csv value: as written, at 4 decimals, or '-' for
    nothing."""
    if cell == recorded or (recorded == "" and cell in ("", "-")):
        return True
    try:
        return cell == f"{float(recorded):.4f}"
    except ValueError:
        return False


def first_difference(
    path: Path, shown: list[str], wanted: list[str], offset: int = 0, fix: str = ""
) -> list[str]:
    """The first line where a file differs from what its records render, naming the cell
    (``fix``: the command that rewrites it, said after)."""
    after = f" ({fix})" if fix else ""
    for i, (line, want) in enumerate(zip(shown, wanted, strict=False)):
        if line != want:
            said, given = differing_cell(line, want), differing_cell(want, line)
            return [
                f"{path}:{offset + i + 1}: differs from its records: the file says {said!r}, "
                f"the records give {given!r}{after}"
            ]
    if len(shown) != len(wanted):
        return [
            f"{path}:{offset + 1}: {len(shown)} lines where its records give {len(wanted)}{after}"
        ]
    return []


def table_md(path: Path, root: Path) -> list[str]:
    """A sweep's table.md against its table.csv (and the seeds aggregated from it)."""
    lines = path.read_text().splitlines()
    try:
        rows, _ = read_table_csv(path.parent / "table.csv")
    except TableError as error:
        return [f"{path}: {error}"]
    first = _table(lines, 0)
    with (path.parent / "table.csv").open(newline="") as handle:
        records = list(csv.reader(handle))
    if not first or cells(lines[first[0]]) != records[0]:
        return [f"{path}:{(first or [0])[0] + 1}: its columns are not table.csv's"]
    body = first[2:]
    if len(body) != len(records) - 1:
        return [f"{path}:{first[0] + 1}: {len(body)} rows where table.csv has {len(rows)}"]
    for i, recorded in zip(body, records[1:], strict=True):
        shown = cells(lines[i])
        if len(shown) != len(recorded):
            return [f"{path}:{i + 1}: {len(shown)} cells where table.csv has {len(recorded)}"]
        for cell, value in zip(shown, recorded, strict=True):
            if not _shown(cell, value):
                return [
                    f"{path}:{i + 1}: differs from its records: the file says {cell!r}, "
                    f"table.csv gives {value!r}"
                ]
    if OVER_SEEDS not in lines:
        return []
    seeds = _table(lines, lines.index(OVER_SEEDS))
    head = cells(lines[seeds[0]])
    group_by = head[: head.index("n")]
    metrics = [h.removesuffix(" (median, reached/n)") for h in head[len(group_by) + 1 :]]
    # table.csv always has the samples-to-threshold column, but the queue's summary has it
    # only where a record has the key: a completed run's (None where never reached), never an
    # interrupted one's; so a table of interrupted runs only reads it as absent
    if not any(r.get("status", COMPLETED) == COMPLETED for r in rows):
        rows = [{k: v for k, v in r.items() if not aggregate.is_threshold(k)} for r in rows]
    seeds_summary, _ = aggregate.summary(rows, group_by, metrics)
    wanted = aggregate.markdown(seeds_summary, metrics, group_by).splitlines()
    return first_difference(path, [lines[i] for i in seeds], wanted, seeds[0])


def table_verdicts(path: Path, root: Path) -> list[str]:
    """A verdicts.md (or verdicts_<metric>.md) of the table.csv beside it."""
    text = path.read_text()
    first = next((m for line in text.splitlines() if (m := BEST.match(line))), None)
    if first is None or not (path.parent / "table.csv").is_file():
        return [f"{path}: neither a frontier's verdicts nor a table.csv's (no table.csv beside it)"]
    metric, mode = first.group(1) or first.group(3), first.group(2) or "max"
    within = re.findall(r"^## (\S+?)=", text, re.M)[:1]
    rows, swept = read_table_csv(path.parent / "table.csv")
    wanted = verdicts.report(rows, [k for k in swept if k != "seed"], metric, mode, within)
    return first_difference(path, text.splitlines(), wanted.splitlines(), 0)


def frontier_verdicts(path: Path, root: Path) -> list[str]:
    """A frontier's verdicts: family x the two columns its sections hold fixed."""
    text = path.read_text()
    sources = sources_of(text)
    found = re.search(r"^## (\S+?)=.*?, (\S+?)=", text, re.M)
    if found is None:
        return [f"{path}: no '## <size>=..., <setting>=...' section to read its cells from"]
    size, key = found.groups()
    ladder = Ladder(key, size=size, metric=AS_RAN)
    wanted = verdicts_markdown([root / s for s in sources], sources, ladder)
    return first_difference(path, text.splitlines(), wanted.splitlines(), 0)


def choices(path: Path, root: Path) -> list[str]:
    """A select stage's choices: the rule applied to its jobs."""
    text = path.read_text()
    groups = text.removeprefix(CHOICES_HEAD).split(" (`", 1)[0].split(", ")
    wanted = choices_markdown(read_jobs(path.parent), groups)
    return first_difference(path, text.splitlines(), wanted.splitlines(), 0)


def _csv_beside(path: Path, found: list) -> list[str]:
    """The frontier's ``.csv`` beside its ``.md``, where there is one (a page ties to it)."""
    table = path.with_suffix(".csv")
    if not table.is_file():
        return []
    shown = table.read_bytes().decode().splitlines()
    return first_difference(table, shown, csv_text(found).splitlines(), 0)


def frontier_md(path: Path, root: Path) -> list[str]:
    """A difficulty ladder's frontier: the rule applied to the jobs its first line names."""
    text = path.read_text()
    sources = sources_of(text)
    found = frontiers([root / s for s in sources], Ladder("task.datamodule.bits", metric=AS_RAN))
    wanted = markdown(found, sources).splitlines()
    return first_difference(path, text.splitlines(), wanted, 0) + _csv_beside(path, found)


def best_rate(path: Path, root: Path) -> list[str]:
    """A rate check's table and its verdicts (and a deciding stage's seeds' verdicts)."""
    text = path.read_text()
    beside = path.parent / "best_rate_verdicts.md"
    committed = beside.read_text() if beside.is_file() else ""
    chosen, checked, _ = best_rate_sources(text)
    folders = [root / s for s in chosen], [root / s for s in checked]
    found_keys = re.search(r"^## (\S+?)=.*?, (\S+?)=", committed, re.M)
    setting = re.search(r"\| largest (\S+) solved \|", text)
    if found_keys is None or setting is None:
        return [f"{path}: its verdicts' sections or its 'largest <setting> solved' column missing"]
    size, key = found_keys.groups()
    ladder = Ladder(key, size=size, metric=AS_RAN)
    found = best_rate_frontiers(*folders, ladder)
    intro = best_rate_intro(chosen, checked)
    wanted = markdown([row for row, _ in found], [], setting.group(1), intro=intro)
    problems = first_difference(path, text.splitlines(), wanted.splitlines(), 0)
    problems += _csv_beside(path, [row for row, _ in found])
    again = cells_verdicts(best_rate_cells(*folders, found, ladder), intro, ladder, pairs=True)
    problems += first_difference(beside, committed.splitlines(), again.splitlines(), 0)
    seeds = path.parent / "best_rate_seeds_verdicts.md"
    if seeds.is_file():  # a deciding stage's seeds, joined at each family's best rate
        head = seeds.read_text().splitlines()[0]
        more = [root / s for s in best_rate_sources(head)[2]]
        cells_more = best_rate_cells(*folders, found, ladder, more)
        wanted_seeds = cells_verdicts(cells_more, head, ladder, pairs=True)
        problems += first_difference(
            seeds, seeds.read_text().splitlines(), wanted_seeds.splitlines(), 0
        )
    return problems


Check = Callable[[Path, Path], list[str]]


def kind_of(path: Path) -> Check | None:
    """The check for a derived file, by its name (and a verdicts file's first line)."""
    name = path.name
    if name == "table.md":
        return table_md
    if name in ("best_rate_verdicts.md", "best_rate_seeds_verdicts.md"):
        return lambda path, root: []  # checked with its best_rate.md
    if name.startswith("verdicts") and name.endswith(".md"):
        frontier = path.read_text().startswith(SOURCES)
        return frontier_verdicts if frontier else table_verdicts
    return {
        "choices.md": choices,
        "frontier.md": frontier_md,
        "best_rate.md": best_rate,
    }.get(name)


def problems(claims: Path, reported: set[Path]) -> list[str]:
    """Every derived file under ``claims`` rendered again against the committed one; the
    pages (README.md) and the study reports' files (``reported``) are checked elsewhere."""
    root = claims.parents[1]
    found: list[str] = []
    for path in sorted(claims.rglob("*.md")):
        if path.name == "README.md" or path.resolve() in reported:
            continue
        check = kind_of(path)
        if check is None:
            found.append(
                f"{path}: a markdown file no derived-table check knows (a table.md, "
                "verdicts*.md, choices.md, frontier.md, best_rate.md or a study report's)"
            )
            continue
        found += check(path, root)
    return found

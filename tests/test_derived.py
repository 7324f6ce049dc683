"""Every derived table beside the claims pages is checked against its records by
``python -m gridlstm.tables check=true`` (`gridlstm.analysis.derived`): a one-digit edit in
any kind of them is named with its file and line. (That the landed files all pass is
tests/test_evidence.py's `test_the_landed_pages_match_their_records`.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gridlstm.analysis import derived

ROOT = Path(__file__).resolve().parents[1]
DECIMAL = re.compile(r"\d\.\d")

# (file, the file whose check reads it, the line to edit: after which marker)
CASES = [
    ("parity/round2/frontier/table.md", None, "|---"),  # the jobs' table against table.csv
    ("paper_regime/format/cpu/table.md", None, "## Over seeds"),  # seeds aggregated again
    ("parity/round2/frontier/verdicts.md", None, "|---"),  # the verdict rule on table.csv
    ("paper_regime/cpu/choices.md", None, "|---"),  # a select stage's rule on its jobs
    ("parity_sizes/frontier/frontier.md", None, "|---"),  # a ladder's frontier
    ("paper_regime/frontier/best_rate.md", None, "|---"),  # a rate check
    ("paper_regime/frontier/best_rate_verdicts.md", "best_rate.md", "|---"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A copy of the repository's claims records, to edit."""
    copy = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "docs" / "claims", copy / "docs" / "claims")
    return copy


def one_digit_edit(path: Path, after: str) -> int:
    """Change one digit of the first decimal number in a table row after ``after``; returns
    the line's number (1-based)."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("|") and (found := DECIMAL.search(lines[i])):
            at = found.start() + 2  # the first decimal digit
            digit = str((int(lines[i][at]) + 1) % 10)
            lines[i] = lines[i][:at] + digit + lines[i][at + 1 :]
            path.write_text("".join(lines))
            return i + 1
    raise AssertionError(f"{path}: no decimal number in a table row after {after!r}")


@pytest.mark.parametrize("name, checked_by, after", CASES, ids=[c[0] for c in CASES])
def test_a_one_digit_edit_in_a_derived_table_is_named_with_its_line(root, name, checked_by, after):
    path = root / "docs" / "claims" / name
    target = path.parent / checked_by if checked_by else path
    check = derived.kind_of(target)
    assert check is not None
    assert check(target, root) == []  # as committed, it is what its records give
    original = path.read_text()
    try:
        line = one_digit_edit(path, after)
        found = check(target, root)
        assert found and found[0].startswith(f"{path}:{line}: differs from its records"), found
    finally:
        path.write_text(original)


@pytest.mark.parametrize("name", ["frontier", "best_rate"])
def test_a_one_digit_edit_in_a_frontiers_csv_is_named_with_its_line(root, name):
    """The parity page ties its numbers to frontier.csv and best_rate.csv: the check of the
    .md beside renders them again from the same frontiers."""
    folder = root / "docs" / "claims" / "parity_sizes" / "frontier"
    table, page = folder / f"{name}.csv", folder / f"{name}.md"
    check = derived.kind_of(page)
    assert check(page, root) == []
    original = table.read_bytes()
    lines = original.decode().split("\r\n")
    lines[2] = lines[2].replace(",3", ",4", 1)  # a run count, the row's last cell
    try:
        table.write_bytes("\r\n".join(lines).encode())
        found = check(page, root)
        assert found and found[0].startswith(f"{table}:3: differs from its records"), found
    finally:
        table.write_bytes(original)


def test_a_markdown_file_no_check_knows_is_named(tmp_path):
    claims = tmp_path / "docs" / "claims"
    (claims / "study").mkdir(parents=True)
    (claims / "study" / "README.md").write_text("# A page: checked by the pages' check\n")
    (claims / "study" / "notes.md").write_text("| a | 0.93 |\n")
    problems = derived.problems(claims, reported=set())
    assert len(problems) == 1 and problems[0].startswith(f"{claims / 'study' / 'notes.md'}:")
    assert derived.problems(claims, reported={(claims / "study" / "notes.md").resolve()}) == []


def test_a_table_md_whose_rows_are_not_its_csvs_is_named(root):
    path = root / "docs" / "claims" / "parity/round2/frontier/table.md"
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    last = next(i for i, line in enumerate(lines) if not line.startswith("|")) - 1
    try:
        path.write_text("".join(lines[:last] + lines[last + 1 :]))  # the jobs' last row gone
        assert "rows where table.csv has" in derived.table_md(path, root)[0]
    finally:
        path.write_text(original)


def test_a_table_whose_runs_have_not_reached_the_threshold_yet_passes(tmp_path):
    """A stage published mid-way (every job interrupted, none at validation 0.99 yet): its
    table.csv has an empty samples-to-threshold column, which the summary the queue wrote
    never had; the check reads it as the queue did."""
    from gridlstm import tables as command
    from tests.test_tables import make_job

    sweep = tmp_path / "sweep"
    for seed in (1, 2):
        stopped = {"status": "interrupted", "reason": "SIGTERM", "samples_seen": 640 * seed}
        make_job(sweep, str(seed), "grid2d", 4, None, metrics_text=json.dumps(stopped))
        (sweep / str(seed) / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
    command.main([f"sweep={sweep}"])
    assert "val/samples_to_threshold" in (sweep / "table.csv").read_text()
    assert derived.table_md(sweep / "table.md", tmp_path) == []

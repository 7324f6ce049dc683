"""Numbers in a page's prose tied to their cells (`gridlstm.analysis.ties`): a tie that holds
passes, any changed number is named with its page, line and cell, a tie naming what is not
there is one line; and no page holds an untied result number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridlstm.analysis import pages, ties

TABLE = (
    "model,n,test/acc mean,test/acc std,params\n"
    "grid2d,3,0.99934,0.00121,67854\nlstm,3,0.2307,0.3123,1000\nshort,3\n"
)


@pytest.mark.parametrize(
    ("value", "shown", "holds"),
    [
        (0.99934, "0.9993", True),
        (0.99934, "0.9996", False),
        (0.0320, "3.20%", True),
        (0.0320, "3.2%", True),
        (0.0330, "3.20%", False),
        (4000, "4,000", True),
        (4001, "4,000", False),
        (0.000162, "1.62e-4", True),
        (0.000172, "1.62e-4", False),
        (float("nan"), "0.5", False),
    ],
)
def test_a_number_agrees_with_its_cell_at_the_precision_it_is_shown(value, shown, holds):
    assert ties.agrees(value, shown) is holds


def page_with(tmp_path: Path, prose: str) -> tuple[Path, list[str]]:
    """A study page (docs/claims/study/README.md under ``tmp_path``) beside its records."""
    folder = tmp_path / "docs" / "claims" / "study"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table_seeds.csv").write_text(TABLE)
    (folder / "queue.json").write_text(json.dumps({"jobs": [{"seconds": 2011.2}]}))
    page = folder / "README.md"
    page.write_text(prose)
    return page, prose.splitlines()


GOOD = (
    '# x\n\nThe grid: [0.9993 +- 0.0012](table_seeds.csv "cell model=grid2d: test/acc mean'
    ' +- test/acc std"), [67,854](table_seeds.csv "cell model=grid2d: params") parameters,'
    ' [2,011 s](queue.json "key jobs.0.seconds").\n'
)


def test_ties_that_hold_pass(tmp_path):
    page, lines = page_with(tmp_path, GOOD)
    assert len(ties.ties(lines)) == 3
    assert pages.tie_problems(page, lines) == []
    assert pages.untied_numbers(page, lines) == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[0.9993 +-", "[0.9996 +-", "the page says 0.9996, the cell gives 0.99934"),
        ("+- 0.0012]", "+- 0.3123]", "the page says 0.3123, the cell gives 0.00121"),
        ("[67,854]", "[68,854]", "the page says 68,854"),
        ("[2,011 s]", "[2,111 s]", "the page says 2,111"),
        ("model=grid2d: params", "model=stacked: params", "0 rows have 'model=stacked'"),
        ("model=grid2d: params", "n=3: params", "3 rows have 'n=3'"),
        ("model=grid2d: params", "model=grid2d: width", "no column 'width'"),
        ("jobs.0.seconds", "jobs.1.seconds", "no key '1'"),
        ("(queue.json", "(gone.json", "no such file"),
        ("[67,854]", "[67,854 and 3]", "shows 2 number(s) for 1 cell(s)"),
        ("model=grid2d: params", "model=short: params", "list index out of range"),
    ],
)
def test_a_changed_or_broken_tie_is_named_with_its_line_and_cell(tmp_path, old, new, message):
    page, _ = page_with(tmp_path, GOOD.replace(old, new, 1))
    problems = pages.tie_problems(page, page.read_text().splitlines())
    assert len(problems) == 1 and f"{page}:3:" in problems[0] and message in problems[0], problems


def test_a_verdicts_tables_row_is_tied_by_its_values(tmp_path):
    verdicts = "Best: x.\n\n| against | mean +- std | p |\n|---|---|---|\n"
    verdicts += "| a | 1.8604 +- 0.0172 | 0.0983 |\n| b, c=1 | 1.9 +- 0.1 | 0.5 |\n"
    page, _ = page_with(tmp_path, "")
    (page.parent / "verdicts.md").write_text(verdicts)
    tied = '[1.860 +- 0.017](verdicts.md "cell against=a: mean +- std"), '
    tied += 'p = [0.098](verdicts.md "cell against=a: p")'
    page.write_text(tied)
    assert pages.tie_problems(page, [tied]) == []
    wrong = tied.replace("[0.098]", "[0.98]")
    (problem,) = pages.tie_problems(page, [wrong])
    assert "the page says 0.98, the cell gives 0.0983" in problem
    (problem,) = pages.tie_problems(page, [tied.replace("against=a:", "row 1:", 1)])
    assert "no <key>=<value>" in problem  # a row is named by its values, not its position
    spaced = "[0.5](verdicts.md \"cell against='b, c=1': p\")"
    assert pages.tie_problems(page, [spaced]) == []
    (page.parent / "verdicts.md").write_text(verdicts + "\n| x | p |\n|---|---|\n| b | 0.7 |\n")
    second = '[0.7](verdicts.md "cell table 2 x=b: p")'
    assert pages.tie_problems(page, [second]) == []
    (problem,) = pages.tie_problems(page, [second.replace("table 2", "table 3")])
    assert "no table 3: the file has 2" in problem


def test_an_untied_number_in_a_pages_history_is_refused(tmp_path):
    page, lines = page_with(tmp_path, GOOD + "\n## History\n\nStage 2 gave 0.975 (`lr=0.003`).\n")
    (problem,) = pages.untied_numbers(page, lines)
    assert ":7: the number 0.975 is typed" in problem and "tie it to its cell" in problem


def test_a_version_or_a_command_is_not_a_result_number(tmp_path):
    text = "# x\n\ntorch 2.14.1, `mnist` 1.1.0, run `lr=0.003`; [a link](v1.5/x.md).\n"
    page, lines = page_with(tmp_path, text)
    assert pages.untied_numbers(page, lines) == []


def test_an_indented_line_is_prose_not_code(tmp_path):
    """Four spaces after a blank line would make a markdown code block, but a list item's
    continuation reads the same: only fenced blocks are code, so no number slips through."""
    page, lines = page_with(tmp_path, GOOD + "\n- Stage 2:\n\n    gave 0.975.\n")
    (problem,) = pages.untied_numbers(page, lines)
    assert ":7: the number 0.975 is typed" in problem


def test_a_tie_shown_in_code_is_an_example_not_a_tie(tmp_path):
    example = '[0.5](gone.csv "cell a=b: p")'
    text = f"# x\n\nWrite `{example}`.\n\n- a list item:\n\n  ```\n  {example}\n  ```\n"
    page, lines = page_with(tmp_path, text)
    assert pages.tie_problems(page, lines) == []
    (problem,) = pages.tie_problems(page, [f"Prose: {example}"])
    assert "no such file" in problem

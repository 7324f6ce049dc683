"""The claims pages' numbers come from their files: every verdicts.md is what the verdict rule
gives on its table.csv today, and every file a claims page links to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridlstm.analysis.tables import verdicts_from_csv

CLAIMS = Path(__file__).resolve().parents[1] / "docs" / "claims"
VERDICTS = sorted(CLAIMS.rglob("verdicts.md"))
FIRST = re.compile(r"Best cell by mean (\S+) \((max|min)\)")


@pytest.mark.parametrize("verdicts", VERDICTS, ids=lambda p: str(p.relative_to(CLAIMS)))
def test_a_committed_verdicts_md_is_regenerated_unchanged_from_its_table(verdicts, tmp_path):
    text = verdicts.read_text()
    metric, mode = FIRST.search(text).groups()
    within = re.findall(r"^## (\S+?)=", text, re.M)[:1]
    copy = tmp_path / "table.csv"
    copy.write_text((verdicts.parent / "table.csv").read_text())
    assert verdicts_from_csv(copy, metric, mode, within).read_text() == text


def test_every_claims_study_over_seeds_has_its_verdicts():
    assert {p.parent.name for p in VERDICTS} >= {
        "addition_depth",
        "coreylynch",
        "memorization_depth",
        "mnist",
        "frontier",
    }


@pytest.mark.parametrize(
    "page", sorted(CLAIMS.rglob("README.md")), ids=lambda p: str(p.relative_to(CLAIMS))
)
def test_every_file_a_claims_page_links_to_exists(page):
    links = re.findall(r"\]\(([^)#\s]+)", page.read_text())
    missing = [link for link in links if "://" not in link and not (page.parent / link).exists()]
    assert not missing, missing

"""What a summary row says beyond its verdict word: which way a "not shown" leans, what else
differs between its cells, and which study superseded it (`gridlstm.analysis.answers`)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from gridlstm.analysis import answers, declaration
from gridlstm.analysis.evidence import Cell, Outcome
from gridlstm.run.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
WORDS = {"a": "shown", "b": "contradicted", "within": "not shown"}


def cell(label: str, values: list[float], params=(), samples=(), compute=()) -> Cell:
    seeds = {str(i): v for i, v in enumerate(values)}
    return Cell(label, seeds, tuple(compute), ("jobs",), tuple(params), tuple(samples))


def study(mode: str = "max") -> SimpleNamespace:
    return SimpleNamespace(verdict=SimpleNamespace(words=WORDS, mode=mode), confirmatory=None)


def outcome(a: Cell, b: Cell, word: str, p: float, test: str = "welch") -> Outcome:
    return Outcome(a, b, p, word, math.nan, test, "exploratory", "test exact-match")


@pytest.mark.parametrize(
    "mode, test, ahead",
    [
        ("max", "welch", "stacked"),  # the higher mean
        ("min", "welch", "grid"),  # a loss: the lower mean
        ("max", "mannwhitney", "grid"),  # the higher median, though its mean is lower
    ],
)
def test_a_not_shown_row_names_the_cell_ahead_by_its_tests_centre(mode, test, ahead):
    grid = cell("grid", [0.0, 0.6, 0.61])  # mean 0.40, median 0.60
    stacked = cell("stacked", [0.5, 0.5, 0.5])  # mean and median 0.50
    found = outcome(grid, stacked, "not shown", 0.3, test)
    assert answers.lean(study(mode), found, None) == f", leans to {ahead}"


def test_only_a_not_shown_row_leans_and_equal_cells_are_level():
    a, b = cell("a", [1.0, 0.9]), cell("b", [0.2, 0.1])
    assert answers.lean(study(), outcome(a, b, "shown", 0.001), None) == ""
    assert answers.lean(study(), outcome(a, a, "not shown", 1.0), None) == ", neither ahead"
    assert answers.lean(study(), outcome(a, b, "not shown", math.nan), None) == ""


def test_sizes_that_differ_beyond_one_and_a_half_times_are_named():
    a = cell("a", [1.0, 1.0], params=[300, 300], samples=[100, 100], compute=[10, 30])
    b = cell("b", [1.0, 1.0], params=[100, 100], samples=[90, 110], compute=[20, 20])
    assert answers.also_differs(a, b) == "parameters 3.00x"  # samples 1.0x, compute 1.0x
    assert answers.also_differs(b, a) == "parameters 0.33x"
    fewer = cell("c", [1.0, 1.0], params=[300, 300], samples=[20, 40], compute=[1, 1])
    assert answers.also_differs(a, fewer) == "samples 3.33x; multiply-adds 20.00x"
    assert answers.also_differs(a, a) == "nothing over 1.5x"
    unrecorded = cell("d", [1.0, 1.0], params=[300, 300], samples=[100, 100])
    assert answers.also_differs(a, unrecorded) == "multiply-adds unrecorded"


def two_studies(tmp_path: Path, superseded_by: str) -> Path:
    claims = tmp_path / "docs" / "claims"
    for name in ("parity", "parity_sizes"):
        shutil.copytree(
            ROOT / "docs" / "claims" / name,
            claims / name,
            ignore=shutil.ignore_patterns("*.png", "jobs"),
        )
    path = claims / "parity" / "study.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["superseded_by"] = superseded_by
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return claims


def test_a_superseded_study_names_its_successor_in_its_row(tmp_path):
    claims = two_studies(tmp_path, "parity_sizes")
    parity = {s.name: s for s in declaration.load_all(claims)}["parity"]
    row = answers.summary_row(parity, claims / "README.md")
    assert "superseded by [parity_sizes](parity_sizes/README.md)" in row[5]


@pytest.mark.parametrize("name", ["parity_size", "parity"])
def test_superseded_by_names_another_declared_study(tmp_path, name):
    claims = two_studies(tmp_path, name)
    with pytest.raises(
        ConfigError,
        match=f"superseded_by: '{name}' is no other declared study; valid: parity_sizes",
    ):
        declaration.load_all(claims)

"""The claims' verdict rule: Welch's t-test against an independent computation, the
verdicts a page quotes, and verdicts.md from a table.csv the tables command wrote."""

from __future__ import annotations

import csv
import math

import pytest
from scipy import stats

from gridlstm import tables as command
from gridlstm.analysis import verdicts
from gridlstm.analysis.verdicts import BEYOND, UNDECIDED, WITHIN, Cell, compare, welch


def t_density(x: float, df: float) -> float:
    log = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log - (df + 1) / 2 * math.log1p(x * x / df))


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    """(t, two-sided p): the Welch-Satterthwaite formulas and Simpson's rule on the t density."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    steps, upper = 200_000, abs(t)
    h = upper / steps
    area = t_density(0, df) + t_density(upper, df)
    area += sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
    return t, 1 - 2 * area * h / 3


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.80, 1.79, 1.82], [1.87, 1.84, 1.87]),
        ([0.99, 1.0, 0.98, 1.0], [0.95, 0.99, 0.90]),
        ([27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1], [27.1, 22.0, 20.8, 23.4, 23.4]),
    ],
)
def test_welch_agrees_with_the_formulas_computed_by_hand(a, b):
    t, p = welch_by_hand(a, b)
    result = welch(Cell("a", tuple(a)), Cell("b", tuple(b)))
    assert result.t == pytest.approx(t, rel=1e-9)
    assert result.p == pytest.approx(p, abs=1e-6)
    assert result.verdict == (BEYOND if p < 0.05 else WITHIN)


def test_the_rule_needs_two_runs_a_cell_and_handles_identical_runs():
    one, three = Cell("one", (0.5,)), Cell("three", (0.5, 0.6, 0.7))
    assert welch(three, one).verdict == f"{UNDECIDED} (n < 2)"
    assert welch(Cell("a", (1.0, 1.0)), Cell("b", (1.0, 1.0))).verdict == WITHIN
    assert welch(Cell("a", (1.0, 1.0)), Cell("b", (0.5, 0.5))).verdict == BEYOND


def test_compare_takes_the_best_cell_in_the_metrics_direction_and_skips_failed_runs():
    rows = [
        {"model": m, "seed": s, "val/bpc": v, "status": "completed"}
        for m, values in (("grid", (1.80, 1.79, 1.82)), ("lstm", (1.87, 1.84, 1.87)))
        for s, v in enumerate(values)
    ] + [{"model": "lstm", "seed": 9, "val/bpc": 0.1, "status": "diverged"}]
    (result,) = compare(rows, ["model"], "val/bpc", "min")
    assert result.best.name == "model=grid" and result.other.values == (1.87, 1.84, 1.87)
    (result,) = compare(rows, ["model"], "val/bpc", "max")
    assert result.best.name == "model=lstm"


def test_verdicts_md_is_written_beside_a_table_csv(tmp_path, capsys):
    """The page's numbers come from its own table.csv: the cells are the swept columns
    other than seed (here the 3-seed coreylynch-shaped table: p = 0.098, within)."""
    header = [
        "job",
        "model",
        "seed",
        "model",
        "layers",
        "hidden",
        "tied",
        "params",
        "task",
        "size",
        "val/bpc",
    ]
    runs = {"grid2d": (1.82074, 1.76190, 1.82892), "stacked_lstm": (1.87223, 1.86845, 1.84065)}
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for job, (model, seed, value) in enumerate(
            (m, s, v) for m, values in runs.items() for s, v in enumerate(values, 1)
        ):
            writer.writerow([job, model, seed, model, 3, 128, "", 1, "text", 50, value])
    command.main([f"table={table}", "metric=val/bpc", "mode=min"])
    text = (tmp_path / "verdicts.md").read_text()
    assert "Best cell by mean val/bpc (min): **model=grid2d**, 1.8039" in text
    assert "| model=stacked_lstm | 1.8604 +- 0.0172 | 3 | -0.0566 | -2.42 | 0.098" in text
    assert text.rstrip().endswith(f"| {WITHIN} |")
    # out=: a second verdicts file beside the same table (another metric), verdicts.md kept
    command.main([f"table={table}", "metric=val/bpc", "mode=max", "out=verdicts_max.md"])
    assert (tmp_path / "verdicts.md").read_text() == text
    assert "(max): **model=stacked_lstm**" in (tmp_path / "verdicts_max.md").read_text()


@pytest.mark.parametrize("out", ["../verdicts.md", "sub/verdicts.md", "verdicts.txt"])
def test_out_must_be_a_markdown_file_name_beside_the_table(tmp_path, capsys, out):
    table = tmp_path / "table.csv"
    table.write_text("job,model,seed,model,layers,hidden,tied,params,task,size,val/bpc\n")
    with pytest.raises(SystemExit) as raised:
        command.main([f"table={table}", "metric=val/bpc", f"out={out}"])
    assert raised.value.code == 2
    assert f"out={out}: a file name ending in .md" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_every_pair_is_compared_by_the_same_rule_the_better_cell_first():
    """A claim about two cells neither of which is the best (the paper's tied grid against a
    stacked LSTM, behind an untied grid) reads its p from the pairs table."""
    values = {"tied": [0.97, 0.88, 0.07], "untied": [0.99, 0.69, 1.0], "stacked": [0.02, 0.03]}
    rows = [{"model": m, "acc": v} for m, vs in values.items() for v in vs]
    pairs = verdicts.pairwise(rows, ["model"], "acc", "max")
    names = [(c.best.name, c.other.name) for c in pairs]
    assert names == [
        ("model=untied", "model=tied"),
        ("model=untied", "model=stacked"),
        ("model=tied", "model=stacked"),
    ]
    expected = stats.ttest_ind(values["tied"], values["stacked"], equal_var=False).pvalue
    assert pairs[2].p == pytest.approx(expected)
    text = verdicts.report(rows, ["model"], "acc", "max", pairs=True)
    assert f"| model=tied | model=stacked | +{0.64 - 0.025:.4f} |" in text
    assert f"{expected:.3g} | within the seed spread |" in text
    assert "Every pair" not in verdicts.report(rows, ["model"], "acc", "max")
    two = [r for r in rows if r["model"] != "untied"]
    assert "Every pair" not in verdicts.report(two, ["model"], "acc", "max", pairs=True)


def test_a_report_within_a_key_compares_at_each_value_only_under_the_level_asked():
    """Cells are compared at the same length only, each length under a heading one level
    below the section a page nests the report in."""
    rows = [
        {"model": m, "digits": d, "acc": v}
        for m, d, vs in [
            ("tied", 3, [1.0, 0.99, 1.0]),
            ("stacked", 3, [1.0, 1.0, 0.98]),
            ("tied", 5, [0.9, 0.95, 0.97]),
            ("stacked", 5, [0.01, 0.02, 0.03]),
        ]
        for v in vs
    ]
    text = verdicts.report(rows, ["model", "digits"], "acc", "max", within=["digits"], level=3)
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("#")] == ["### digits=3", "### digits=5"]
    five = text[text.index("### digits=5") :]
    p = stats.ttest_ind([0.9, 0.95, 0.97], [0.01, 0.02, 0.03], equal_var=False).pvalue
    assert f"{p:.3g} | beyond the seed spread |" in five
    assert "digits=3" not in five
    assert "## digits=3" in verdicts.report(rows, ["model", "digits"], "acc", "max", ["digits"])

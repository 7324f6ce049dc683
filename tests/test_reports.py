"""Reports a declaration names (``reports:`` in study.yaml, `gridlstm.analysis.reports`):
each kind's keys checked where the declaration is read, the files written by study, and a
secondary arm of a time-to-threshold stage compared by the stage's own log-rank test."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from scipy import stats

from gridlstm import tables
from gridlstm.analysis import declaration, pages, reports
from gridlstm.run.errors import ConfigError
from tests.test_time_to_threshold import ARMS, SEEDS, job, run_primary, stage, study

ARM_FILE = "samples/secondary_arms.md"
REPORT = {"kind": "secondary_arms", "stage": "equal_samples", "file": ARM_FILE}


VERDICTS = {"kind": "verdicts", "file": "v.md", "table": "depths", "metric": "test/acc"}
VERDICTS["title"] = "Depths"
DEPTHS = {  # (model, depth): test/acc by seed
    ("grid2d", 1): [0.50, 0.52, 0.51],
    ("grid2d", 4): [0.90, 0.92, 0.91],
    ("grid2d", 8): [0.99],  # the best mean, on one seed: not its family's best depth
    ("stacked_lstm", 1): [0.20, 0.25, 0.22],
    ("stacked_lstm", 2): [0.30, 0.31, 0.29],
}


def depth_study(tmp_path: Path, reports_given: dict) -> Path:
    """The toy study with the runs of `DEPTHS`, a table of them and ``reports_given``."""
    path = declare(tmp_path, reports_given)
    for (model, depth), values in DEPTHS.items():
        for seed, value in enumerate(values, start=1):
            settings = {"model": model, "model.net.num_layers": depth, "seed": seed}
            record = {"test/acc": value, "seed": seed}
            job(path.parent / "depths/cpu", f"{model}-{depth}-{seed}", settings, record)
    raw = yaml.safe_load(path.read_text())
    raw["tables"] = {
        "depths": {
            "records": ["depths/cpu"],
            "rows": {"model": "family", "model.net.num_layers": "depth"},
            "names": {"grid2d": "tied 2-LSTM"},
            "columns": [{"metric": "test/acc", "show": "mean_sd"}],
        }
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def verdicts_text(path: Path) -> str:
    ((file, text),) = reports.outputs(declaration.load(path)).items()
    assert file == path.parent / "v.md"
    return text


def test_verdicts_between_a_tables_rows_name_cells_by_its_headers(tmp_path):
    text = verdicts_text(depth_study(tmp_path, {"v": {**VERDICTS, "within": ["model"]}}))
    assert text.startswith(
        "# Depths\n\nA cell is a row of the study's table `depths` (study.yaml), named by its "
        "headers and the runs' own values (grid2d: tied 2-LSTM).\n\n## family=grid2d\n"
    )
    assert "**depth=8**, 0.9900 +- nan (n = 1)" in text  # the best mean, whatever its seeds
    p = stats.ttest_ind(DEPTHS["stacked_lstm", 2], DEPTHS["stacked_lstm", 1], equal_var=False)
    row = f"| depth=1 | 0.2233 +- 0.0252 | 3 | +0.0767 | {p.statistic:.2f} | {p.pvalue:.3g} |"
    assert row in text
    # rows are compared within a family only
    assert "family=stacked_lstm" in text and "family=grid2d, depth" not in text


def test_each_familys_best_cell_is_the_best_mean_over_its_most_seeded_cells(tmp_path):
    given = {**VERDICTS, "best_of": ["model"], "cells": ["model", "model.net.num_layers"]}
    text = verdicts_text(depth_study(tmp_path, {"v": given}))
    # grid2d at depth 8 has the best mean on one seed; depth 4 is the best of three seeds
    assert "**family=grid2d, depth=4**, 0.9100 +- 0.0100 (n = 3)" in text
    assert "| family=stacked_lstm, depth=2 |" in text
    assert "depth=8" not in text and "depth=1" not in text


def test_parts_share_one_file_each_with_its_own_rows_metric_and_mode(tmp_path):
    """A page's verdicts restated: several verdicts over one table, each part under its
    heading with the report's keys and its own; the table itself under the title. Cells held
    fixed (``within``) need not name the cell."""
    given = {**VERDICTS, "show_table": True, "cells": ["model.net.num_layers"]}
    given["within"] = ["model"]
    given["parts"] = [
        {"heading": "Shallow", "where": {"model.net.num_layers": ["1", "2"]}},
        {"heading": "Least", "mode": "min", "where": {"model": "stacked_lstm"}},
    ]
    text = verdicts_text(depth_study(tmp_path, {"v": given}))
    head, shallow, least = text.split("\n## ")
    assert "| family | depth | test/acc |" in head  # the declared table, as the page shows it
    assert "| tied 2-LSTM | 4 | 0.910 +- 0.010 |" in head
    assert shallow.startswith("Shallow\n\n### family=grid2d\n")
    assert "**depth=2**, 0.3000" in shallow and "depth=4" not in shallow
    assert least.startswith("Least\n\n### family=stacked_lstm\n")
    assert "(min): **depth=1**, 0.2233" in least and "grid2d" not in least


@pytest.mark.parametrize(
    "change, message",
    [
        ({"table": "nope"}, "reports.v: reads table 'nope', which tables: does not declare; "),
        ({"cells": ["seed"]}, "reports.v: 'seed' is not a key of table depths's rows; valid: "),
        ({"cells": ["model"]}, "reports.v: two rows of table depths are the cell grid2d: add"),
    ],
    ids=["table", "key", "cell"],
)
def test_a_verdicts_report_naming_what_its_table_lacks_is_refused(tmp_path, change, message):
    path = depth_study(tmp_path, {"v": {**VERDICTS, **change}})
    with pytest.raises(ConfigError, match=re.escape(message)):
        reports.outputs(declaration.load(path))


def declare(tmp_path: Path, given: dict) -> Path:
    """The toy study of test_time_to_threshold, its stage's base in every arm's settings,
    with ``given`` as its ``reports:``."""
    path = study(tmp_path, stage())
    raw = yaml.safe_load(path.read_text())
    raw["reports"] = given
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def started(folder: Path, when: str) -> None:
    """The queue's record of when the folder's first jobs began."""
    runs = {"runs": [{"started": when, "jobs_started": len(SEEDS)}]}
    (folder / "queue.json").write_text(json.dumps(runs))


def run_arm(path: Path, times: list[int | None]) -> None:
    """The secondary arm's jobs, begun after the primary jobs: the stacked arm with its biases
    left to nn.LSTM."""
    folder = path.parent / "samples/default_bias/cpu"
    for seed, value in zip(SEEDS, times, strict=True):
        record = {"val/samples_to_threshold": value, "seed": seed}
        record["samples_seen"] = 1000 if value is None else value + 50
        settings = {**ARMS["b"], "model.net.forget_bias": "null", "seed": seed}
        job(folder, f"b-{seed}", {"trainer.max_steps": 100, **settings}, record)
    started(path.parent / "samples/confirm/cpu", "2026-11-29 10:00:00")
    started(folder, "2026-12-01 09:00:00")


def test_a_time_to_threshold_arm_gets_the_log_rank_test_and_kaplan_meier_medians(tmp_path):
    path = declare(tmp_path, {"arms": REPORT})
    # the primary jobs with the stage's base settings, as the queue runs them
    primary = path.parent / "samples/confirm/cpu"
    b = [900, None, None, None, None, None]
    for seed, value in zip(SEEDS, b, strict=True):
        record = {"val/samples_to_threshold": value, "seed": seed}
        record["samples_seen"] = 1000 if value is None else value + 50
        job(primary, f"b-{seed}", {"trainer.max_steps": 100, **ARMS["b"], "seed": seed}, record)
    toy = declaration.load(path)
    assert reports.outputs(toy) == {}  # the arm has not run: no file
    own = [100, 200, 300, 400, None, None]
    run_arm(path, own)
    ((file, text),) = reports.outputs(declaration.load(path)).items()
    assert file == path.parent / ARM_FILE
    row = next(line for line in text.splitlines() if line.startswith("| stacked, own biases |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    expected = stats.logrank(
        stats.CensoredData(uncensored=[100, 200, 300, 400], right=[1000, 1000]),
        stats.CensoredData(uncensored=[900], right=[1000] * 5),
    ).pvalue
    assert cells[1:] == [
        "stacked",
        "6",
        "300",  # Kaplan-Meier: half the runs have reached it at 300
        "not reached",
        "4/6 reached",
        "1/6 reached",
        f"{expected:.3g}",
        "complete",
        "`default_bias`",
    ]
    assert "log-rank test" in text and "censored at its samples_seen" in text
    assert not math.isnan(expected)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"r": {"kind": "pie_chart"}}, "reports.r.kind='pie_chart': choose one of secondary_arms"),
        ({"r": {**REPORT, "colour": "red"}}, "reports.r: unknown key 'colour'"),
        ({"r": {"kind": "secondary_arms"}}, "reports.r: missing file:"),
        ({"r": {**REPORT, "arms": [{"label": "x"}]}}, "reports.r: an arm has exactly"),
        ({"r": {**REPORT, "needs": "samples"}}, "reports.r.needs: a list of folders"),
        (["r"], "reports: a mapping, not"),
        (
            {"r": {**VERDICTS, "parts": [{"heading": "h", "colour": "red"}]}},
            "reports.r: parts: unknown key 'colour'; valid: heading, best_of, cells",
        ),
        ({"r": {**VERDICTS, "parts": [{"where": {}}]}}, "reports.r: parts: each part needs a"),
        (
            {
                "r": {
                    "kind": "verdicts",
                    "file": "v.md",
                    "table": "depths",
                    "metric": "test/acc",
                    "title": "t",
                    "compose": ["experiment=x"],
                }
            },
            "reports.r: unknown key 'compose'",
        ),
        (
            {"r": {**VERDICTS, "within": ["model"], "best_of": ["model"]}},
            "reports.r: within: and best_of: do not go together",
        ),
        (
            {"r": {**VERDICTS, "mode": "most"}},
            "reports.r: mode='most': choose one of max, min",
        ),
    ],
    ids=[
        "kind",
        "unknown key",
        "missing key",
        "bad arm",
        "needs",
        "not a mapping",
        "part's key",
        "part's heading",
        "another kind's key",
        "within and best_of",
        "verdicts mode",
    ],
)
def test_a_bad_report_is_refused_in_one_line_naming_file_and_key(tmp_path, given, message):
    path = declare(tmp_path, given)
    with pytest.raises(ConfigError) as error:
        declaration.load(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_reports_are_written_by_study_and_a_refused_name_writes_nothing(tmp_path, capsys):
    path = declare(tmp_path, {"arms": REPORT})
    run_primary(path, {"a": [100] * 6, "b": [None] * 6})
    run_arm(path, [100] * 6)
    root = tmp_path
    with pytest.raises(
        ConfigError, match="report=nope: no study declares reports: .* valid: all, toy"
    ):
        pages.write_reports(root, "nope")
    assert not (path.parent / ARM_FILE).exists()
    assert pages.write_reports(root, "toy") == [path.parent / ARM_FILE]
    assert pages.report_problems(root) == []
    text = (path.parent / ARM_FILE).read_text().splitlines()
    line = next(i for i, x in enumerate(text) if "6" in x and x.startswith("|"))
    text[line] = text[line].replace("6", "7", 1)
    (path.parent / ARM_FILE).write_text("\n".join(text) + "\n")
    (problem,) = pages.report_problems(root)
    # named by its line and cell, as every derived table is
    assert problem.startswith(f"{path.parent / ARM_FILE}:{line + 1}: differs from its records")
    assert "the file says" in problem and "report=toy rewrites it" in problem
    with pytest.raises(SystemExit) as ended:
        tables.main(["report=nope", f"root={root}"])
    assert ended.value.code == 2 and "report=nope" in capsys.readouterr().err

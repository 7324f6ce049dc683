"""Reports a declaration names (``reports:`` in study.yaml, `gridlstm.analysis.reports`):
each kind's keys checked where the declaration is read, the files written by study, and a
secondary arm of a time-to-threshold stage compared by the stage's own log-rank test."""

from __future__ import annotations

import json
import math
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
            {
                "r": {
                    "kind": "restated_verdicts",
                    "file": "x.md",
                    "runs": ["cpu"],
                    "reruns": ["rerun/cpu"],
                    "cell": "model.net.num_layers",
                    "measures": [{"metric": "val/acc", "mode": "most"}],
                }
            },
            "reports.r: measures: each {metric: <metric>, mode: max or min}",
        ),
        (
            {
                "r": {
                    "kind": "restated_verdicts",
                    "file": "x.md",
                    "runs": ["cpu"],
                    "reruns": ["rerun/cpu"],
                    "cell": "depth",
                    "measures": [{"metric": "val/acc", "mode": "max"}],
                }
            },
            "reports.r: cell='depth': choose model.net.num_layers or task.datamodule.digits",
        ),
        (
            {
                "r": {
                    "kind": "seed_verdicts",
                    "file": "v.md",
                    "table": "v.csv",
                    "records": ["cpu"],
                    "keys": ["model"],
                    "metric": "test/acc",
                    "title": "t",
                    "compose": ["experiment=x"],
                }
            },
            "reports.r: unknown key 'compose'",
        ),
    ],
    ids=[
        "kind",
        "unknown key",
        "missing key",
        "bad arm",
        "needs",
        "not a mapping",
        "mode",
        "cell",
        "another kind's key",
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
    (path.parent / ARM_FILE).write_text((path.parent / ARM_FILE).read_text().replace("6", "7"))
    (problem,) = pages.report_problems(root)
    assert problem.startswith(f"{path.parent / ARM_FILE}: differs from its records")
    assert "report=toy rewrites it" in problem
    with pytest.raises(SystemExit) as ended:
        tables.main(["report=nope", f"root={root}"])
    assert ended.value.code == 2 and "report=nope" in capsys.readouterr().err

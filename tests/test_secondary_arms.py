"""A confirmatory stage's secondary arms: compared with the arm they change by the stage's own
test, no verdict word, nothing shown before every seed has run."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import yaml
from scipy import stats

from gridlstm.analysis import declaration, pages
from gridlstm.analysis.job_records import rows_of
from gridlstm.analysis.reports.secondary_arms import Arm, base_settings, render, stage_of
from gridlstm.analysis.studies import load_studies
from tests.test_evidence import ROOT, STUDY, write_runs

ARM = Arm("A, priority depth", "a", {"grid2d_priority": "depth"}, "arm/cpu", "a_queue_study")


def study_copy(tmp_path) -> Path:
    """The study's declaration and records (their queue records too: when each began), less
    its own secondary arms."""
    source, folder = ROOT / "docs" / "claims" / STUDY, tmp_path / STUDY
    skip = shutil.ignore_patterns("depth_priority", "untied", "equal_compute_v1*", "*.png")
    shutil.copytree(source, folder, ignore=skip)
    return folder


def arm_a(folder) -> tuple[dict, dict[int, float]]:
    """Arm A's settings as its jobs ran them (the stage's base and the arm's overrides), and
    its test exact-match by seed."""
    study = declaration.load(folder / "study.yaml")
    stage = study.confirmatory
    settings = base_settings(stage) | stage.a.overrides
    rows = rows_of(folder / stage.records)
    return settings, {int(r["seed"]): float(r["test/acc"]) for r in rows if r["model"] == "grid2d"}


def write_arm(folder, seeds: list[int], **changed) -> dict[int, float]:
    settings, _ = arm_a(folder)
    values = {seed: 0.5 + seed / 100 for seed in seeds}
    overrides = {"a": {**settings, "grid2d_priority": "depth", **changed}}
    write_runs(folder / ARM.records, {("a", s): v for s, v in values.items()}, overrides)
    # its first run started its jobs after the confirmatory stage's first job
    later = {"runs": [{"started": "2026-12-01 09:00:00", "jobs_started": len(seeds)}]}
    (folder / ARM.records / "queue.json").write_text(json.dumps(later))
    return values


def rendered(folder) -> str:
    """The report of `ARM` against the study's confirmatory block."""
    study = declaration.load(folder / "study.yaml")
    return render(study, study.confirmatory, (ARM,))


def row_of(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {ARM.label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_complete_arm_gets_the_stages_test_and_no_verdict_word(tmp_path):
    folder = study_copy(tmp_path)
    values = write_arm(folder, list(range(18, 28)))
    _, a = arm_a(folder)
    text = rendered(folder)
    row = row_of(text)
    p = stats.mannwhitneyu(list(values.values()), list(a.values()), alternative="two-sided").pvalue
    assert row[2] == "10" and row[8] == "complete"
    assert row[3] == f"{statistics.median(values.values()):.3f}"
    assert row[4] == f"{statistics.median(a.values()):.3f}"
    assert row[7] == f"{p:.3g}" and "Mann-Whitney U" in text
    assert not any(word in text for word in ("shown", "contradicted", "beyond the seed spread"))


def test_an_arm_short_of_the_stages_seeds_shows_its_count_only(tmp_path):
    folder = study_copy(tmp_path)
    write_arm(folder, [18, 19, 20])
    assert row_of(rendered(folder))[2:9] == ["3", "-", "-", "-", "-", "-", "3 of 10"]


def test_runs_on_other_test_problems_are_not_the_arm(tmp_path):
    """The stage's base settings are part of each cell: an arm run on other held-out problems
    is not compared with the stage's arm."""
    folder = study_copy(tmp_path)
    write_arm(folder, list(range(18, 28)), **{"task.datamodule.data_seed": 1})
    assert row_of(rendered(folder))[2:9] == ["0", "-", "-", "-", "-", "-", "0 of 10"]


def test_the_committed_report_matches_its_records():
    assert not [p for p in pages.report_problems(ROOT) if "secondary_arms" in p]


def test_each_declared_arm_is_its_confirmatory_arm_with_one_knob_changed():
    """The study runs each report's arm (a stage of its study.yaml) as the stage's base and
    the changed arm's overrides with one knob set to another value, and nothing else, on the
    stage's seeds; its recorded jobs ran that (an arm that differed in more would not say what its
    knob does)."""
    name = STUDY
    folder = ROOT / "docs" / "claims" / name
    study = declaration.load(folder / "study.yaml")
    queue = load_studies(folder / "study.yaml")
    for entry in (e for e in study.reports.values() if e["kind"] == "secondary_arms"):
        stage = stage_of(study, entry.get("stage", ""))
        for arm in (Arm.declared(given) for given in entry.get("arms", [])):
            declared = queue[f"{name}_{arm.queue}"]
            assert set(declared) <= {"claim", "overrides", "cases", "dry_run"}, arm.queue
            assert declared["cases"] == [{"seed": seed} for seed in stage.seeds]
            assert declared["claim"] == f"{name}/{Path(arm.records).parent.as_posix()}"
            given = getattr(stage, arm.changes).overrides
            assert not any(isinstance(v, dict) for v in given.values()), "a chosen value"
            settings = [o for o in stage.base if "=" not in o or o[0] in "~+"]
            unchanged = dict(o.split("=", 1) for o in stage.base if o not in settings) | {
                k: str(v) for k, v in given.items()
            }
            ((knob, value),) = arm.knob.items()
            assert str(unchanged.get(knob, "")) != str(value), f"{arm.queue}: knob unchanged"
            expected = {**unchanged, knob: str(value)}
            overrides = declared["overrides"]
            assert [o for o in overrides if "=" not in o or o[0] in "~+"] == settings
            assert dict(o.split("=", 1) for o in overrides if o not in settings) == expected
            for job in sorted((folder / arm.records / "jobs").glob("*/overrides.yaml")):
                ran = yaml.safe_load(job.read_text())
                assert ran[: len(overrides)] == overrides, job

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
from gridlstm.analysis.evidence import rows_of
from gridlstm.analysis.reports.secondary_arms import ARMS, Arm, render
from tests.test_evidence import ROOT, STUDY, write_runs

ARM = Arm("A, priority depth", "a", {"grid2d_priority": "depth"}, "arm/cpu", "a_queue_study")


def study_copy(tmp_path) -> Path:
    """The study's declaration and records, without its own secondary arm and without the
    queue's records of when each ran: nothing here starts after its declared day but the new
    arm."""
    source, folder = ROOT / "docs" / "claims" / STUDY, tmp_path / STUDY
    skip = shutil.ignore_patterns("queue.json", "depth_priority", "equal_compute_v1*", "*.png")
    shutil.copytree(source, folder, ignore=skip)
    return folder


def arm_a(folder) -> dict:
    study = declaration.load(folder / "study.yaml")
    base = study.confirmatory.a["overrides"]
    rows = rows_of(folder / study.confirmatory.records)
    return base, {int(r["seed"]): float(r["test/acc"]) for r in rows if r["model"] == "grid2d"}


def write_arm(folder, seeds: list[int]) -> dict[int, float]:
    base, _ = arm_a(folder)
    values = {seed: 0.5 + seed / 100 for seed in seeds}
    overrides = {"a": {**base, "grid2d_priority": "depth"}}
    write_runs(folder / ARM.records, {("a", s): v for s, v in values.items()}, overrides)
    later = {"started": "2026-12-01 09:00:00"}  # after the stage's declared day
    (folder / ARM.records / "queue.json").write_text(json.dumps(later))
    return values


def row_of(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {ARM.label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_complete_arm_gets_the_stages_test_and_no_verdict_word(tmp_path):
    folder = study_copy(tmp_path)
    values = write_arm(folder, list(range(18, 28)))
    _, a = arm_a(folder)
    text = render(folder, (ARM,))
    row = row_of(text)
    p = stats.mannwhitneyu(list(values.values()), list(a.values()), alternative="two-sided").pvalue
    assert row[2:4] == ["10", "10"]
    assert row[4] == f"{statistics.median(values.values()):.3f}"
    assert row[5] == f"{statistics.median(a.values()):.3f}"
    assert row[8] == f"{p:.3g}" and "Mann-Whitney U" in text
    assert not any(word in text for word in ("shown", "contradicted", "beyond the seed spread"))


def test_an_arm_short_of_the_stages_seeds_shows_its_count_only(tmp_path):
    folder = study_copy(tmp_path)
    write_arm(folder, [18, 19, 20])
    assert row_of(render(folder, (ARM,)))[2:9] == ["3", "10", "-", "-", "-", "-", "-"]


def test_the_committed_report_matches_its_records():
    assert not [p for p in pages.report_problems(ROOT) if "secondary_arms" in p]


def test_each_declared_arm_is_its_confirmatory_arm_with_its_knob_changed():
    """The queue's file runs each arm: the stage's base and the changed arm's overrides with
    the arm's knob and nothing else, on the stage's seeds (an arm that differed in more would
    not say what its knob does)."""
    for name, arms in ARMS.items():
        study = declaration.load(ROOT / "docs" / "claims" / name / "study.yaml")
        stage = study.confirmatory
        queue = yaml.safe_load((ROOT / "scripts" / "cpu_studies.yaml").read_text())
        for arm in arms:
            declared = queue[arm.queue]
            expected = dict(o.split("=", 1) for o in stage.base if "=" in o)
            expected |= {k: str(v) for k, v in getattr(stage, arm.changes)["overrides"].items()}
            expected |= {k: str(v) for k, v in arm.knob.items()}
            got = dict(o.split("=", 1) for o in declared["overrides"] if "=" in o)
            assert got == expected, arm.queue
            assert [o for o in declared["overrides"] if "=" not in o] == [
                o for o in stage.base if "=" not in o
            ]
            assert [c["seed"] for c in declared["cases"]] == list(stage.seeds)
            assert declared["claim"] == f"{name}/{Path(arm.records).parent.as_posix()}"

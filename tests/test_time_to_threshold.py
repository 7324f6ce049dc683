"""A confirmatory stage on a time to a threshold (samples until validation exact-match first
reaches 0.99): runs that never reach it are censored, not dropped; the log-rank test decides;
a study holds it under ``stages:`` beside its ``confirmatory:`` block; its secondary arm runs
once the primary jobs are done."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from scipy import stats

from gridlstm.analysis import confirmatory, declaration, preregistration, survival
from gridlstm.analysis.studies.spec import load_studies
from gridlstm.run.errors import ConfigError
from tests.test_evidence import git

ARMS = {
    "a": {"model": "grid2d", "model.net.num_layers": 4},
    "b": {"model": "stacked_lstm", "model.net.num_layers": 2},
}
SEEDS = [7, 8, 9, 10, 11, 12]
METRIC = "val/samples_to_threshold"


def test_the_kaplan_meier_median_and_which_arm_is_sooner():
    times, reached = [1, 2, 3, 5, 6, 6], [True, True, True, True, False, False]
    assert survival.median(times, reached) == 3.0
    assert survival.median([6, 6], [False, False]) == math.inf
    # fewer than half reached in either arm: the share that did decides
    one, two = (
        ([1, 6, 6, 6], [True, False, False, False]),
        ([1, 2, 6, 6], [True, True, False, False]),
    )
    assert survival.sooner(two, one) == 1 and survival.sooner(one, two) == -1
    assert survival.sooner(one, one) == 0
    assert survival.sooner((times, reached), one) == 1  # a median 3 against none reached
    assert survival.median(*two) == 2.0  # half reached by 2: the median


def test_the_log_rank_p_is_scipys_and_undefined_without_any_event():
    a, b = ([1, 2, 3, 9], [True, True, True, False]), ([4, 9, 9, 9], [True, False, False, False])
    expected = stats.logrank(
        stats.CensoredData(uncensored=[1, 2, 3], right=[9]),
        stats.CensoredData(uncensored=[4], right=[9, 9, 9]),
    ).pvalue
    assert survival.logrank(a, b) == pytest.approx(expected)
    assert math.isnan(survival.logrank(([9, 9], [False, False]), ([9, 9], [False, False])))


def job(folder: Path, name: str, overrides: dict, record: dict) -> None:
    path = folder / "jobs" / name
    path.mkdir(parents=True)
    (path / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    (path / "metrics.json").write_text(json.dumps({"status": "completed", **record}))


def stage(**changes) -> dict:
    return {
        "name": "equal_samples",
        "kind": "confirmatory",
        "declared": "2026-11-29",
        "test": "logrank",
        "alpha": 0.05,
        "metric": METRIC,
        "censored_at": "samples_seen",
        "mode": "min",
        "seeds": SEEDS,
        "factor": ["model", "model.net.num_layers"],
        "records": "samples/confirm/cpu",
        "base": ["trainer.max_steps=100"],
        "question": "Which arm solves sooner?",
        "cannot_say": "Anything else.",
        "a": {"label": "tied", "overrides": dict(ARMS["a"])},
        "b": {"label": "stacked", "overrides": dict(ARMS["b"])},
        "words": {"a": "grid sooner", "b": "lstm sooner", "within": "neither"},
        "secondary": [
            {
                "label": "stacked, own biases",
                "changes": "b",
                "knob": {"model.net.forget_bias": None},
                "records": "samples/default_bias/cpu",
            }
        ],
        **changes,
    }


def study(tmp_path: Path, given: dict | list) -> Path:
    """A study whose exploratory verdict reads seeds 1 and 2, with ``given`` as its stages."""
    folder = tmp_path / "docs" / "claims" / "toy"
    for arm, overrides in ARMS.items():
        for seed in (1, 2):
            record = {"test/acc": 0.5, METRIC: 100 * seed, "samples_seen": 300, "seed": seed}
            job(folder / "explore/cpu", f"{arm}-{seed}", {**overrides, "seed": seed}, record)
    cell = {"records": ["explore/cpu"]}
    raw = {
        "claim": "addition",
        "source": "paper",
        "statement": "a claim",
        "protocol": "a protocol",
        "question": "a question?",
        "cannot_say": "much",
        "verdict": {
            "metric": "test/acc",
            "chosen_on": "validation",
            "a": {"label": "tied", "where": ARMS["a"], **cell},
            "b": {"label": "stacked", "where": ARMS["b"], **cell},
            "words": {"a": "shown", "b": "contradicted", "within": "not shown"},
        },
        "stages": given if isinstance(given, list) else [given],
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_primary(path: Path, times: dict[str, list[int | None]]) -> None:
    """The stage's twenty jobs: a time per seed, None where the run never reached it."""
    folder = path.parent / "samples/confirm/cpu"
    for arm, found in times.items():
        for seed, value in zip(SEEDS, found, strict=True):
            record = {METRIC: value, "samples_seen": 1000 if value is None else value + 50}
            job(folder, f"{arm}-{seed}", {**ARMS[arm], "seed": seed}, {**record, "seed": seed})


def test_a_censored_stage_under_stages_counts_unsolved_runs_and_decides_by_log_rank(tmp_path):
    path = study(tmp_path, stage())
    toy = declaration.load(path)
    found = confirmatory.confirmatory_stages(toy)
    assert [s.name for s in found] == ["equal_samples"] and toy.confirmatory is None
    assert confirmatory.confirmatory_outcome(toy, found[0]) is None  # declared, not run
    a = [100, 200, 300, 400, 500, None]
    b = [900, None, None, None, None, None]
    run_primary(path, {"a": a, "b": b})
    outcome = confirmatory.confirmatory_outcome(declaration.load(path), found[0])
    assert outcome is not None and outcome.a.n == outcome.b.n == 6  # none dropped
    assert outcome.b.values == {str(s): 1000.0 for s in SEEDS[1:]} | {"7": 900.0}
    expected = stats.logrank(
        stats.CensoredData(uncensored=[100, 200, 300, 400, 500], right=[1000]),
        stats.CensoredData(uncensored=[900], right=[1000] * 5),
    ).pvalue
    assert expected < 0.05 and outcome.p == pytest.approx(expected)
    assert outcome.word == "grid sooner" and outcome.test == "logrank"
    # the other way round: the stacked LSTM's runs sooner
    for folder in (path.parent / "samples/confirm/cpu/jobs").iterdir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    run_primary(path, {"a": b, "b": a})
    assert confirmatory.confirmatory_outcome(declaration.load(path), found[0]).word == "lstm sooner"


def test_the_secondary_arm_runs_once_the_primary_jobs_are_done(tmp_path):
    path = study(tmp_path, stage())
    queued = load_studies(path)
    assert set(queued) == {"toy_equal_samples"}
    cases = queued["toy_equal_samples"]["cases"]
    assert len(cases) == 12 and {c["seed"] for c in cases} == set(SEEDS)
    assert queued["toy_equal_samples"]["overrides"] == ["trainer.max_steps=100"]
    run_primary(path, {"a": [100] * 6, "b": [None] * 6})
    queued = load_studies(path)
    assert queued["toy_default_bias"]["claim"] == "toy/samples/default_bias"
    assert queued["toy_default_bias"]["cases"][0] == {
        **ARMS["b"],
        "model.net.forget_bias": "null",
        "seed": 7,
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"censored_at": None}, "the log-rank test goes with a time to a threshold"),
        ({"mode": "max"}, "the log-rank test goes with a time to a threshold"),
        ({"metric": "val/solved_at"}, "val/solved_at is not recorded by the study's jobs"),
        ({"seeds": [2, 7]}, "seed 2 was used by an earlier stage"),
        ({"secondary": [{"label": "x", "changes": "c"}]}, "changes='c': choose one of a, b"),
        ({"tiebreak": "a"}, "unknown key 'tiebreak'"),
    ],
    ids=["no censoring", "max", "unrecorded metric", "used seed", "bad arm", "unknown key"],
)
def test_a_bad_time_to_threshold_stage_is_refused_in_one_line(tmp_path, changes, message):
    path = study(tmp_path, stage(**changes))
    with pytest.raises(ConfigError, match=message) as error:
        declaration.load(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_date_declared_without_quotes_reads_as_the_quoted_one(tmp_path):
    path = study(tmp_path, stage())
    path.write_text(path.read_text().replace("'2026-11-29'", "2026-11-29"))
    assert "declared: 2026-11-29\n" in path.read_text()
    (found,) = declaration.load(path).stages
    assert found.declared == "2026-11-29"


@pytest.mark.parametrize(
    "written, message",
    [
        ("declared: yesterday", "stages[0].declared: a date, YYYY-MM-DD, not 'yesterday'"),
        ("declared: 2026-13-01", "not a readable YAML file: month must be in 1..12"),
        ("declared: [2026-11-29", "not a readable YAML file: line "),
    ],
    ids=["not a date", "no such month", "unclosed list"],
)
def test_a_bad_date_or_broken_yaml_is_one_line_naming_where(tmp_path, written, message):
    path = study(tmp_path, stage())
    path.write_text(path.read_text().replace("declared: '2026-11-29'", written))
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        declaration.load(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_arms_capped_differently_are_refused(tmp_path):
    given = stage(budget=["trainer.max_steps"])
    given["a"]["overrides"]["trainer.max_steps"] = 100
    given["b"]["overrides"]["trainer.max_steps"] = 200
    with pytest.raises(ConfigError, match="compared at one cap for both arms"):
        declaration.load(study(tmp_path, given))


def test_two_stages_with_one_name_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="two stages share name .equal_samples."):
        declaration.load(study(tmp_path, [stage(), stage(records="other/cpu")]))


def test_a_stage_under_stages_is_held_to_its_commit_and_its_design(tmp_path):
    path = study(tmp_path, stage())
    folder = path.parent / "samples/confirm/cpu"
    folder.mkdir(parents=True)
    (folder / "queue.json").write_text(json.dumps({"started": "2026-11-29 12:00:00"}))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "declare", date="2026-11-29T13:00:00+00:00")
    problems = preregistration.preregistration_problems(declaration.load(path))
    assert len(problems) == 1 and "'equal_samples' was committed after its first job" in problems[0]
    (folder / "queue.json").write_text(json.dumps({"started": "2026-11-29 14:00:00"}))
    assert preregistration.preregistration_problems(declaration.load(path)) == []
    raw = yaml.safe_load(path.read_text())
    raw["stages"][0]["alpha"] = 0.1
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    problems = preregistration.preregistration_problems(declaration.load(path))
    assert len(problems) == 1 and "changed after its first job began" in problems[0]


def test_two_completed_stages_answer_each_on_its_axis_and_get_a_summary_row_each(tmp_path):
    from gridlstm.analysis import answers

    path = study(tmp_path, stage())
    raw = yaml.safe_load(path.read_text())
    first = {k: v for k, v in stage().items() if k not in ("kind", "censored_at", "secondary")}
    first |= {"name": "equal_compute", "test": "welch", "metric": "test/acc", "mode": "max"}
    first |= {"seeds": [13, 14, 15], "records": "compute/cpu"}
    raw["confirmatory"] = first
    raw["axes"] = {"equal_compute": "equal multiply-adds", "equal_samples": "equal samples"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    toy = declaration.load(path)
    assert len(answers.rows_by_axis(toy, tmp_path / "summary.md")) == 1  # nothing completed
    for arm, values in {"a": [0.2, 0.3, 0.25], "b": [0.9, 0.95, 0.92]}.items():
        for seed, value in zip([13, 14, 15], values, strict=True):
            overrides = {**ARMS[arm], "seed": seed}
            job(path.parent / "compute/cpu", f"{arm}-{seed}", overrides, {"test/acc": value})
    run_primary(path, {"a": [100, 200, 300, 400, 500, None], "b": [900] + [None] * 5})
    toy = declaration.load(path)
    text = "\n".join(answers.answer(toy))
    assert "At equal multiply-adds, test/acc: tied: 0.2500 +- 0.0500 (n=3); stacked:" in text
    assert "At equal samples, samples to solve: tied: 5 of 6 solved, median 300; stacked: 1" in text
    assert "(`equal_compute` 2026-11-29; `equal_samples` 2026-11-29; alpha 0.05, two-sided)" in text
    # each stage's own word: B ahead at equal compute (Welch), A sooner at equal samples
    assert "p = 0.000268: **lstm sooner**. At equal samples" in text
    assert text.endswith("much") and "p = 0.00959: **grid sooner**." in text
    assert text.count("**Answer (confirmatory).**") == 1
    rows = answers.rows_by_axis(toy, tmp_path / "summary.md")
    assert [row[1].split(":")[0] for row in rows] == ["at equal multiply-adds", "at equal samples"]
    assert rows[1][5] == "**grid sooner** (confirmatory, at equal samples)"
    assert rows[1][2].startswith("samples to solve: tied: 5 of 6 solved")


def test_several_confirmatory_words_say_a_shared_alpha_once_and_differing_ones_each():
    from types import SimpleNamespace as Stage

    from gridlstm.analysis.answers import declared_before

    one, two = Stage(name="x", declared="2026-11-27", alpha=0.05), Stage(name="y", declared="d")
    said = declared_before([one, Stage(**vars(two), alpha=0.05)])
    assert "(`x` 2026-11-27; `y` d; alpha 0.05, two-sided)" in said
    said = declared_before([one, Stage(**vars(two), alpha=0.01)])
    assert "(`x` 2026-11-27, alpha 0.05; `y` d, alpha 0.01; two-sided)" in said


def test_an_axis_for_an_undeclared_stage_is_refused(tmp_path):
    path = study(tmp_path, stage())
    raw = yaml.safe_load(path.read_text())
    raw["axes"] = {"equal_flops": "equal multiply-adds"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match="axes: equal_flops is no confirmatory stage; valid: eq"):
        declaration.load(path)


def test_the_log_rank_power_by_simulation_grows_with_the_gap_and_is_seeded():
    from gridlstm.analysis.survival import power

    span, cap = (1.8e6, 2.8e6), 3e6
    none = power((0.3, 0.3), span, cap, trials=400)
    some = power((0.6, 0.2), span, cap, trials=400)
    large = power((0.9, 0.0), span, cap, trials=400)
    assert none < 0.1 < some < large and large > 0.9
    assert some == power((0.6, 0.2), span, cap, trials=400)  # the same seed, the same number


def test_an_axis_answer_within_the_spread_says_its_lean_is_within_chance_and_no_median():
    """Fewer than half solved in each arm: no median to give; a "not shown" names the arm
    its rule leans to, and says that lean is within chance."""
    from types import SimpleNamespace

    from gridlstm.analysis import answers, evidence

    def cell(label, solved):
        times = {str(s): (100.0 * (s + 1) if s < solved else 900.0) for s in range(10)}
        reached = {str(s): s < solved for s in range(10)}
        return evidence.Cell(label, times, (), (), reached=reached)

    words = {"a": "shown", "b": "contradicted", "within": "not shown"}
    stage = SimpleNamespace(name="s", words=words, mode="min")
    shown = evidence.Outcome(
        cell("grid", 4), cell("lstm", 2), 0.3, "not shown", math.nan, "logrank", "", "x"
    )
    said = answers.axis_sentence(SimpleNamespace(axes={"s": "equal samples"}), stage, shown)
    assert "grid: 4 of 10 solved; lstm: 2 of 10 solved;" in said
    assert said.endswith("**not shown**, leans to grid (within chance).")

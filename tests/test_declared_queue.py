"""A study's jobs live in its own study.yaml (``stages:``): designed cases, rule stages with a
frontier, its dry-run sizes once; the queue reads them by ``study=`` and ``only=<stage>``, and
a machine profile names the stages sized for one kind of machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridlstm import queue
from gridlstm.analysis.studies.spec import load_studies
from gridlstm.run.errors import ConfigError
from tests.test_study_template import new_study

RULE_STAGE = {
    "name": "frontier",
    "kind": "rule",
    "records": "frontier/cpu",
    "base": ["experiment=parity_cpu", "logger=csv"],
    "rule": {"kind": "choice", "reads": ["explore/cpu"], "groups": ["model"]},
    "grid": {"task.datamodule.bits": [8, 12, 16]},
    "frontier": {"key": "task.datamodule.bits", "metric": "val/acc", "below": 0.6},
    "dry_run": ["task.datamodule.bits=4"],
}


def declare(root: Path, *stages: dict, dry_run: list[str] | None = None) -> Path:
    """The template study with ``stages`` added after its own (and a study-level dry_run)."""
    folder = new_study(root)
    raw = yaml.safe_load((folder / "study.yaml").read_text())
    raw["stages"] += list(stages)
    if dry_run is not None:
        raw["dry_run"] = dry_run
    (folder / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "study.yaml"


def test_a_rule_stage_reads_records_of_its_own_study_and_keeps_its_frontier(tmp_path):
    path = declare(tmp_path, RULE_STAGE, dry_run=["trainer.max_steps=2", "param_budget=2000"])
    found = load_studies(path)
    assert list(found) == ["toy_explore", "toy_frontier"]
    stage = found["toy_frontier"]
    assert stage["claim"] == "toy/frontier"
    assert stage["rule"]["reads"] == ["toy/explore/cpu"]  # as the queue's results are named
    assert stage["frontier"] == RULE_STAGE["frontier"] and "cases" not in stage
    # the study's dry-run sizes in place of the default, then the stage's own
    assert stage["dry_run"] == [
        "trainer.max_steps=2",
        "param_budget=2000",
        "task.datamodule.bits=4",
    ]
    assert found["toy_explore"]["dry_run"] == ["trainer.max_steps=2", "param_budget=2000"]


def test_a_stage_whose_records_are_the_studys_folder_is_named_by_the_study(tmp_path):
    designed = {"name": "search", "kind": "designed", "records": "cpu", "grid": {"seed": [1]}}
    found = load_studies(declare(tmp_path, designed))
    assert found["toy_search"]["claim"] == "toy"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cases": [{"seed": 1}]}, "a rule stage's cases come from its rule"),
        ({"kind": "designed"}, "only a rule stage (kind: rule) has one"),
        ({"launch": {}}, "launch"),
        ({"rule": {**RULE_STAGE["rule"], "reads": ["nowhere/cpu"]}}, "which no study of the file"),
        ({"rule": {**RULE_STAGE["rule"], "kind": "guess"}}, "rule kind 'guess' is unknown"),
        ({"frontier": {"key": "seed", "metric": "val/acc", "below": 0.6}}, "not a grid key"),
        ({"dry_run": "task.datamodule.bits=4"}, "stages[1].dry_run: a list, not"),
        ({"records": "explore/cpu"}, "two stages share records 'explore/cpu'"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_stage_is_one_line_naming_the_file_and_the_fix(tmp_path, change, message):
    with pytest.raises(ConfigError, match="study.yaml") as error:
        load_studies(declare(tmp_path, {**RULE_STAGE, **change}))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_profile_names_declared_stages_in_its_order_among_studies_of_its_own(tmp_path):
    declare(tmp_path, RULE_STAGE)
    (tmp_path / "scripts").mkdir()
    profile = tmp_path / "scripts" / "gpu.yaml"
    plain = {"claim": "other", "overrides": ["task=parity"], "grid": {"seed": [1]}}
    profile.write_text(
        yaml.safe_dump({"toy": ["frontier", "explore"], "other": plain}, sort_keys=False)
    )
    assert list(load_studies(profile)) == ["toy_frontier", "toy_explore", "other"]
    profile.write_text(yaml.safe_dump({"toy": ["fronteir"]}))
    with pytest.raises(ConfigError, match="toy: no stage 'fronteir'; stages: explore, frontier"):
        load_studies(profile)


def test_the_queue_takes_a_study_by_name_and_its_stages_by_their_names(tmp_path, monkeypatch):
    declare(tmp_path, RULE_STAGE)
    monkeypatch.chdir(tmp_path)
    cfg, _, _ = queue.parse(["study=toy", "only=frontier,toy_explore"])
    assert Path(cfg.studies) == Path("docs/claims/toy/study.yaml")
    assert cfg.only == "toy_frontier,toy_explore"
    with pytest.raises(ConfigError, match="study=toi: no docs/claims/toi/study.yaml; declared"):
        queue.parse(["study=toi"])
    with pytest.raises(ConfigError, match="one of the two"):
        queue.parse(["study=toy", "studies=scripts/gpu_studies.yaml"])


def test_only_names_a_stage_that_waits_and_why_or_the_declared_stages(tmp_path, monkeypatch):
    """A confirmatory stage or secondary arm that cannot run yet is not "unknown": the
    refusal says what it waits for (here the declaration alone, without its records)."""
    folder = tmp_path / "docs" / "claims" / "paper_regime"
    folder.mkdir(parents=True)
    source = Path(__file__).parents[1] / "docs" / "claims" / "paper_regime" / "study.yaml"
    (folder / "study.yaml").write_text(source.read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        queue.parse(["study=paper_regime", "only=default_bias"])
    assert str(error.value) == (
        "only=default_bias: default_bias is a secondary arm of stage equal_samples: it runs "
        "once both arms have completed every declared seed (10 each); nothing was run"
    )
    with pytest.raises(ConfigError) as error:
        queue.parse(["study=paper_regime", "only=serch"])
    assert str(error.value).startswith(
        "only=serch: no such stage in docs/claims/paper_regime/study.yaml; stages: "
        "equal_compute_rate2, search, format,"
    )

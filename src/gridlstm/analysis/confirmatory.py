"""What a claims study's pre-registered stages do once declared (`gridlstm.analysis.
declared`): the select stages choose a value on validation for a later stage, and each
confirmatory stage's word is a verdict of the study.

Why a module of its own: what makes a confirmatory test trustworthy is checked here, not
written on a page. Its seeds are fresh (`used_seeds`), its arms differ only in the compared
factor and the budget (`check_confirmatory`), an arm that waits for a choice runs once the
choice is made (`confirmatory_cases`, `queue_studies`: the queue runs a declaration's stages
with the rules applied); that its declaration was committed before its first job began is
`gridlstm.analysis.preregistration`'s.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gridlstm.analysis.declared import (
    CellSpec,
    Confirmatory,
    Secondary,
    Study,
    confirmatory_stages,
    fail,
    run_stages,
    select_stages,
)
from gridlstm.analysis.evidence import Cell, NoRuns, Outcome, compare, gather
from gridlstm.analysis.frontier import matches
from gridlstm.analysis.job_records import read_queue, rows_of
from gridlstm.analysis.stages import number
from gridlstm.run.clock import moment
from gridlstm.run.runs import RECORD, RESCORED, read_record

# a dry run's sizes for a study that declares none of its own (dry_run: in study.yaml)
DRY_RUN = (
    "task.datamodule.batch_size=8",
    "task.datamodule.batches_per_epoch=2",
    "task.datamodule.val_size=16",
    "task.datamodule.test_size=16",
    "trainer.max_steps=4",
)


def first_start(records: Path, ran_jobs: bool = False) -> datetime | None:
    """When a records folder's first queue run began (`moment`: zones compared); queue.json's
    runs, or its one "started" if written before runs were kept. With ``ran_jobs``, None unless
    that run started jobs: a folder first filled with jobs found done or restored ran them at
    some other time."""
    record = read_queue(records)
    runs = [r for r in record.get("runs") or [] if r.get("started")]
    runs.sort(key=lambda r: moment(r["started"]))
    runs = runs or ([{"started": record["started"]}] if record.get("started") else [])
    if not runs or (ran_jobs and not runs[0].get("jobs_started")):
        return None
    return moment(runs[0]["started"])


def used_seeds(study: Study, stage: Confirmatory | None = None) -> set[int]:
    """Every seed an earlier run of the study's records used (every jobs/ or table.csv below
    it). A folder whose first run started its jobs after the confirmatory stage's first job
    cannot have shaped it (its design is fixed from then: `preregistration_problems`): an arm
    reported beside it, on its seeds by design. Before the stage has run, every folder counts.
    A re-score of a run's checkpoint (`gridlstm.evaluate`'s record, which names its
    ``ckpt_path``) is not a run: its seed is the scored run's."""
    stage = stage or study.confirmatory
    seen: set[int] = set()
    folders = {p.parents[2] for p in study.folder.rglob("jobs/*/metrics.json")}
    folders |= {p.parent for p in study.folder.rglob("table.csv")}
    own = study.folder / stage.records if stage else None
    since = first_start(own, ran_jobs=True) if own else None
    for folder in folders:
        later = first_start(folder, ran_jobs=True)
        if (own and folder.resolve() == own.resolve()) or (since and later and later > since):
            continue
        for row in rows_of(folder):
            seed = number(row.get("seed"))
            if seed is not None and not row.get(RESCORED):  # a re-score trains nothing
                seen.add(int(seed))
    return seen


def recorded(study: Study) -> set[str]:
    """What the study's jobs record (every key of their metrics.json files), so that a stage
    is refused a metric no job writes; empty where no job has run yet."""
    found: set[str] = set()
    for path in study.folder.rglob(f"jobs/*/{RECORD}"):
        found |= set(read_record(path.parent) or {})
    return found


def check_confirmatory(path: Path, study: Study, stage: Confirmatory | None = None) -> None:
    """Refuse a confirmatory stage whose seeds an earlier stage used, whose arms differ in
    more than the compared factor and the budget (a time to a threshold: the factor only, the
    cap alike), or whose metric the study's jobs do not record."""
    stage = stage or study.confirmatory
    assert stage is not None
    where = "confirmatory" if stage is study.confirmatory else f"stage {stage.name}"
    reused = sorted(set(stage.seeds) & used_seeds(study, stage))
    if reused:
        raise fail(
            path,
            f"{where}.seeds: seed {reused[0]} was used by an earlier stage of the study; "
            "a confirmatory stage needs fresh seeds",
        )
    names = {s.name for s in select_stages(study)}
    for arm in ("a", "b"):
        for key, value in getattr(stage, arm).overrides.items():
            if isinstance(value, dict) and value.get("chosen_by") not in names:
                raise fail(
                    path,
                    f"{where}.{arm}.overrides.{key}: chosen_by names no declared select stage; "
                    f"valid: {', '.join(sorted(names)) or 'none declared'}",
                )
    budget = () if stage.censored_at else stage.budget
    allowed = set(stage.factor) | set(budget)
    a, b = stage.a.overrides, stage.b.overrides
    for key in sorted(set(a) | set(b)):
        if key not in allowed and str(a.get(key)) != str(b.get(key)):
            why = (
                "a time to a threshold is compared at one cap for both arms"
                if key in stage.budget
                else f"which is neither the compared factor ({', '.join(stage.factor)}) nor "
                f"the budget ({', '.join(stage.budget) or 'none named'})"
            )
            raise fail(
                path,
                f"{where}: arms differ in {key} ({a.get(key)!r} against {b.get(key)!r}), {why}",
            )
    keys = recorded(study)
    for key in (stage.metric, stage.censored_at):
        if keys and key and key not in keys:
            raise fail(
                path,
                f"{where}: {key} is not recorded by the study's jobs; recorded: "
                f"{', '.join(sorted(keys))}",
            )


def chosen(study: Study, name: str) -> Any | None:
    """The value a select stage's rule chose (its ``choose.key`` in the completed run best on
    its validation metric), or None until every one of its cases has completed; a tie goes to
    the case listed first."""
    stage = next(s for s in select_stages(study) if s.name == name)
    folder = study.folder / stage.records
    if not (folder / "jobs").is_dir():
        return None
    rows = rows_of(folder)
    done = [r for r in rows if any(matches(r, case) for case in stage.cases)]
    if len(done) < len(stage.cases):
        return None
    done.sort(key=lambda r: next(i for i, c in enumerate(stage.cases) if matches(r, c)))
    rule = stage.choose
    assert rule is not None
    sign = 1 if rule.mode == "max" else -1
    best = max(done, key=lambda r: sign * (number(r.get(rule.metric)) or -math.inf))
    return yaml.safe_load(str(best[rule.key]))


def as_override(value: Any) -> Any:
    """A declared value as an override's text takes it (YAML's null is Hydra's ``null``)."""
    return "null" if value is None else value


def arm_overrides(
    study: Study, arm: str, stage: Confirmatory | None = None
) -> dict[str, Any] | None:
    """A confirmatory arm's overrides with every ``chosen_by`` resolved (None while a stage it
    reads has not chosen)."""
    stage = stage or study.confirmatory
    assert stage is not None
    out = {}
    for key, value in getattr(stage, arm).overrides.items():
        if isinstance(value, dict):
            value = chosen(study, value["chosen_by"])
            if value is None:
                return None
        out[key] = as_override(value)
    return out


def confirmatory_cases(study: Study, stage: Confirmatory | None = None) -> list[dict[str, Any]]:
    """The confirmatory stage's jobs: each arm at each declared seed, an arm that waits on a
    stage's choice once that choice is made (the queue's cases)."""
    stage = stage or study.confirmatory
    if stage is None:
        return []
    arms = [arm_overrides(study, arm, stage) for arm in ("a", "b")]
    return [{**arm, "seed": seed} for arm in arms if arm is not None for seed in stage.seeds]


def secondary_cases(study: Study, stage: Confirmatory, arm: Secondary) -> list[dict[str, Any]]:
    """A secondary arm's jobs, once both of the stage's arms have completed every seed (the
    primary jobs go first)."""
    if arm_cells(study, stage) is None:
        return []
    given = arm_overrides(study, arm.changes, stage) or {}
    knob = {k: as_override(v) for k, v in arm.knob.items()}
    return [{**given, **knob, "seed": seed} for seed in stage.seeds]


def queue_studies(study: Study) -> dict[str, dict[str, Any]]:
    """The study's stages as the queue's studies (`gridlstm.analysis.studies.spec`): each
    designed or select stage's cases (and grid), each confirmatory stage's cases its inputs
    allow now, and its secondary arms once it is complete. Results go to
    ``<results>/<study>/<records without its last folder>/<tag>``."""

    def entry(records: str, base: tuple[str, ...], cases: list[dict[str, Any]]) -> dict:
        folder = Path(records).parent.as_posix()
        claim = study.name if folder == "." else f"{study.name}/{folder}"
        found = {"claim": claim, "overrides": list(base)}
        found["dry_run"] = list(study.dry_run or DRY_RUN)  # the study's tiny sizes, if it says
        return found | ({"cases": cases} if cases else {})

    found = {}
    for stage in run_stages(study):
        made = entry(stage.records, stage.base, [dict(c) for c in stage.cases])
        made["dry_run"] += stage.dry_run
        made |= {"grid": stage.grid} if stage.grid else {}
        made |= stage.queue
        rule = stage.queue.get("rule")
        if isinstance(rule, dict) and isinstance(rule.get("reads"), list):
            # its reads are records under the study's folder, as a stage's records: are
            made["rule"] = {**rule, "reads": [f"{study.name}/{r}" for r in rule["reads"]]}
        found[f"{study.name}_{stage.name}"] = made
    for confirm in confirmatory_stages(study):
        if cases := confirmatory_cases(study, confirm):
            found[f"{study.name}_{confirm.name}"] = entry(confirm.records, confirm.base, cases)
        for arm in confirm.secondary:
            if cases := secondary_cases(study, confirm, arm):
                name = f"{study.name}_{Path(arm.records).parent.name}"
                found[name] = entry(arm.records, confirm.base, cases)
    return found


def waiting_stages(study: Study) -> dict[str, str]:
    """The declared confirmatory stages and secondary arms `queue_studies` leaves out for
    now, by queue name, each with why (so that ``only=`` can say it rather than "unknown")."""
    waiting = {}
    for confirm in confirmatory_stages(study):
        if not confirmatory_cases(study, confirm):
            waiting[f"{study.name}_{confirm.name}"] = (
                f"stage {confirm.name} waits for the choice its arms read"
            )
        for arm in confirm.secondary:
            if not secondary_cases(study, confirm, arm):
                name = Path(arm.records).parent.name
                waiting[f"{study.name}_{name}"] = (
                    f"{name} is a secondary arm of stage {confirm.name}: it runs once both "
                    f"arms have completed every declared seed ({len(confirm.seeds)} each)"
                )
    return waiting


def arm_cells(study: Study, stage: Confirmatory) -> tuple[Cell, Cell] | None:
    """The stage's two arms once every declared seed of both completed, else None."""
    folder = study.folder / stage.records
    if not ((folder / "jobs").is_dir() or (folder / "table.csv").is_file()):
        return None
    cells = []
    for arm in ("a", "b"):
        given, overrides = getattr(stage, arm), arm_overrides(study, arm, stage)
        if overrides is None:
            return None
        spec = CellSpec(label=given.label, where=overrides, records=(stage.records,))
        try:
            cell = gather(study, spec, stage.metric, stage.censored_at)
        except NoRuns:
            return None
        if {int(float(s)) for s in cell.values} != set(stage.seeds):
            return None
        cells.append(cell)
    return cells[0], cells[1]


def confirmatory_outcome(study: Study, stage: Confirmatory | None = None) -> Outcome | None:
    """The confirmatory verdict once every declared seed of both arms completed, else None."""
    stage = stage or study.confirmatory
    found = arm_cells(study, stage) if stage else None
    if stage is None or found is None:
        return None
    label = study.verdict.metric_label if stage.metric == study.verdict.metric else stage.metric
    found = compare(*found, stage.test, stage.alpha, stage.mode, stage.words)
    return found.labelled("confirmatory", label)

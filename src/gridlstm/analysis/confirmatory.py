"""Pre-registered stages of a claims study: the select stages that choose a value on
validation for a later stage, and the confirmatory stage whose word is the study's verdict.

Why a module of its own: what makes a confirmatory test trustworthy is checked here, not
written on a page. Its seeds are fresh (`used_seeds`), its arms differ only in the compared
factor and the budget (`check_confirmatory`), an arm that waits for a choice runs once the
choice is made (`confirmatory_cases`, `queue_studies`: the queue runs a declaration's stages
with the rules applied); that its declaration was committed before its first job began is
`gridlstm.analysis.preregistration`'s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gridlstm.analysis.evidence import (
    CHOOSE_KEYS,
    CONFIRMATORY_KEYS,
    CONFIRMATORY_PROSE,
    DRY_RUN,
    STAGE_KEYS,
    STAGE_KINDS,
    TESTS,
    CellSpec,
    Outcome,
    Study,
    check_keys,
    compare,
    fail,
    gather,
    one_of,
    rows_of,
    verdict_words,
)
from gridlstm.analysis.frontier import matches
from gridlstm.analysis.stages import number
from gridlstm.analysis.studies.clock import moment


@dataclass(frozen=True)
class Stage:
    """A stage that runs designed cases and then chooses one value by a rule on validation
    (e.g. a family's learning rate at a new budget), for a later stage to use."""

    name: str
    kind: str
    declared: str
    records: str
    base: tuple[str, ...]
    cases: tuple[dict[str, Any], ...]
    choose: dict[str, str]


@dataclass(frozen=True)
class Confirmatory:
    """A pre-registered primary comparison: fixed (test, alpha, seeds, arms) before its runs."""

    name: str
    declared: str
    test: str
    alpha: float
    metric: str
    mode: str
    seeds: tuple[int, ...]
    factor: tuple[str, ...]
    budget: tuple[str, ...]
    records: str
    base: tuple[str, ...]
    a: dict[str, Any]
    b: dict[str, Any]
    words: dict[str, str]
    prose: dict[str, str]  # its own CONFIRMATORY_PROSE, shown once it has run


def parse_stages(path: Path, raw: Any) -> tuple[Stage, ...]:
    if not isinstance(raw, list):
        raise fail(path, "stages: a list of stages (name, kind, declared, records, cases)")
    found = []
    for i, given in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(given, dict):
            raise fail(path, f"{where}: a mapping (name, kind, declared, records, cases)")
        check_keys(path, where, given, STAGE_KEYS)
        missing = sorted({"name", "kind", "declared", "records", "cases", "choose"} - set(given))
        if missing:
            raise fail(path, f"{where}: missing {missing[0]}:")
        choose = given["choose"]
        if not isinstance(choose, dict) or set(choose) - CHOOSE_KEYS or "key" not in choose:
            raise fail(path, f"{where}.choose: key:, metric: and mode: (the rule)")
        metric = str(choose.get("metric", "val/acc"))
        if not metric.startswith("val/"):
            raise fail(
                path,
                f"{where}.choose.metric={metric}: a rule chooses on validation (a val/ metric); "
                "the test split decides verdicts only",
            )
        cases = given["cases"]
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
            raise fail(path, f"{where}.cases: a non-empty list of {{key: value}} (designed)")
        found.append(
            Stage(
                name=str(given["name"]),
                kind=one_of(path, f"{where}.kind", given["kind"], STAGE_KINDS),
                declared=str(given["declared"]),
                records=str(given["records"]),
                base=tuple(str(o) for o in given.get("base", [])),
                cases=tuple(dict(c) for c in cases),
                choose={
                    "key": str(choose["key"]),
                    "metric": metric,
                    "mode": one_of(
                        path, f"{where}.choose.mode", choose.get("mode", "max"), ("max", "min")
                    ),
                },
            )
        )
    names = [stage.name for stage in found]
    if len(set(names)) != len(names):
        raise fail(path, "stages: two stages share a name")
    return tuple(found)


def parse_confirmatory(path: Path, raw: Any) -> Confirmatory:
    if not isinstance(raw, dict):
        raise fail(path, "confirmatory: a mapping (name, declared, test, alpha, seeds, a, b)")
    check_keys(path, "confirmatory", raw, CONFIRMATORY_KEYS)
    missing = sorted(CONFIRMATORY_KEYS - {"budget", "base", "mode", *CONFIRMATORY_PROSE} - set(raw))
    if missing:
        raise fail(path, f"confirmatory: missing {missing[0]}:")
    seeds = tuple(int(s) for s in raw["seeds"])
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise fail(path, "confirmatory.seeds: two or more distinct seeds")
    arms = {}
    for arm in ("a", "b"):
        given = raw[arm]
        if not isinstance(given, dict) or not isinstance(given.get("overrides"), dict):
            raise fail(path, f"confirmatory.{arm}: label: and overrides: {{key: value}}")
        arms[arm] = given
    return Confirmatory(
        name=str(raw["name"]),
        declared=str(raw["declared"]),
        test=one_of(path, "confirmatory.test", raw["test"], tuple(TESTS)),
        alpha=float(raw["alpha"]),
        metric=str(raw["metric"]),
        mode=one_of(path, "confirmatory.mode", raw.get("mode", "max"), ("max", "min")),
        seeds=seeds,
        factor=tuple(str(k) for k in raw["factor"]),
        budget=tuple(str(k) for k in raw.get("budget", [])),
        records=str(raw["records"]),
        base=tuple(str(o) for o in raw.get("base", [])),
        a=arms["a"],
        b=arms["b"],
        words=verdict_words(path, "confirmatory.words", raw["words"]),
        prose={k: " ".join(str(raw[k]).split()) for k in CONFIRMATORY_PROSE if k in raw},
    )


def first_start(records: Path, ran_jobs: bool = False) -> datetime | None:
    """When a records folder's first queue run began (`moment`: zones compared); queue.json's
    runs, or its one "started" if written before runs were kept. With ``ran_jobs``, None unless
    that run started jobs: a folder first filled with jobs found done or restored ran them at
    some other time."""
    queue = records / "queue.json"
    if not queue.is_file():
        return None
    record = json.loads(queue.read_text())
    runs = [r for r in record.get("runs") or [] if r.get("started")]
    runs.sort(key=lambda r: moment(r["started"]))
    runs = runs or ([{"started": record["started"]}] if record.get("started") else [])
    if not runs or (ran_jobs and not runs[0].get("jobs_started")):
        return None
    return moment(runs[0]["started"])


def used_seeds(study: Study) -> set[int]:
    """Every seed an earlier run of the study's records used (every jobs/ or table.csv below
    it). A folder whose first run started its jobs after the confirmatory stage's first job
    cannot have shaped it (its design is fixed from then: `preregistration_problems`): an arm
    reported beside it, on its seeds by design. Before the stage has run, every folder counts."""
    seen: set[int] = set()
    folders = {p.parents[2] for p in study.folder.rglob("jobs/*/metrics.json")}
    folders |= {p.parent for p in study.folder.rglob("table.csv")}
    own = study.folder / study.confirmatory.records if study.confirmatory else None
    since = first_start(own, ran_jobs=True) if own else None
    for folder in folders:
        later = first_start(folder, ran_jobs=True)
        if (own and folder.resolve() == own.resolve()) or (since and later and later > since):
            continue
        for row in rows_of(folder):
            seed = number(row.get("seed"))
            if seed is not None:
                seen.add(int(seed))
    return seen


def check_confirmatory(path: Path, study: Study) -> None:
    """Refuse a confirmatory stage whose seeds an earlier stage used, or whose arms differ in
    more than the compared factor and the budget."""
    stage = study.confirmatory
    assert stage is not None
    reused = sorted(set(stage.seeds) & used_seeds(study))
    if reused:
        raise fail(
            path,
            f"confirmatory.seeds: seed {reused[0]} was used by an earlier stage of the study; "
            "a confirmatory stage needs fresh seeds",
        )
    names = {s.name for s in study.stages}
    for arm in ("a", "b"):
        for key, value in getattr(stage, arm)["overrides"].items():
            if isinstance(value, dict) and value.get("chosen_by") not in names:
                raise fail(
                    path,
                    f"confirmatory.{arm}.overrides.{key}: chosen_by names no declared stage; "
                    f"valid: {', '.join(sorted(names)) or 'none declared'}",
                )
    allowed = set(stage.factor) | set(stage.budget)
    a, b = stage.a["overrides"], stage.b["overrides"]
    for key in sorted(set(a) | set(b)):
        if key not in allowed and str(a.get(key)) != str(b.get(key)):
            raise fail(
                path,
                f"confirmatory: arms differ in {key} ({a.get(key)!r} against {b.get(key)!r}), "
                f"which is neither the compared factor ({', '.join(stage.factor)}) nor the "
                f"budget ({', '.join(stage.budget) or 'none named'})",
            )


def chosen(study: Study, name: str) -> Any | None:
    """The value a select stage's rule chose (its ``choose.key`` in the completed run best on
    its validation metric), or None until every one of its cases has completed; a tie goes to
    the case listed first."""
    stage = next(s for s in study.stages if s.name == name)
    folder = study.folder / stage.records
    if not (folder / "jobs").is_dir():
        return None
    rows = rows_of(folder)
    done = [r for r in rows if any(matches(r, case) for case in stage.cases)]
    if len(done) < len(stage.cases):
        return None
    done.sort(key=lambda r: next(i for i, c in enumerate(stage.cases) if matches(r, c)))
    sign = 1 if stage.choose["mode"] == "max" else -1
    best = max(done, key=lambda r: sign * (number(r.get(stage.choose["metric"])) or -math.inf))
    return yaml.safe_load(str(best[stage.choose["key"]]))


def arm_overrides(study: Study, arm: str) -> dict[str, Any] | None:
    """A confirmatory arm's overrides with every ``chosen_by`` resolved (None while a stage it
    reads has not chosen)."""
    assert study.confirmatory is not None
    out = {}
    for key, value in getattr(study.confirmatory, arm)["overrides"].items():
        if isinstance(value, dict):
            value = chosen(study, value["chosen_by"])
            if value is None:
                return None
        out[key] = value
    return out


def confirmatory_cases(study: Study) -> list[dict[str, Any]]:
    """The confirmatory stage's jobs: each arm at each declared seed, an arm that waits on a
    stage's choice once that choice is made (the queue's cases)."""
    stage = study.confirmatory
    if stage is None:
        return []
    arms = [arm_overrides(study, arm) for arm in ("a", "b")]
    return [{**arm, "seed": seed} for arm in arms if arm is not None for seed in stage.seeds]


def queue_studies(study: Study) -> dict[str, dict[str, Any]]:
    """The study's stages as the queue's studies (`gridlstm.analysis.studies.spec`): each
    select stage's designed cases, and the confirmatory stage's cases its inputs allow now.
    Results go to ``<results>/<study>/<records without its last folder>/<tag>``."""

    def claim(records: str) -> str:
        return f"{study.name}/{Path(records).parent.as_posix()}"

    found = {}
    for stage in study.stages:
        found[f"{study.name}_{stage.name}"] = {
            "claim": claim(stage.records),
            "overrides": list(stage.base),
            "cases": [dict(c) for c in stage.cases],
            "dry_run": list(DRY_RUN),
        }
    confirm = study.confirmatory
    if confirm is not None and (cases := confirmatory_cases(study)):
        found[f"{study.name}_{confirm.name}"] = {
            "claim": claim(confirm.records),
            "overrides": list(confirm.base),
            "cases": cases,
            "dry_run": list(DRY_RUN),
        }
    return found


def confirmatory_outcome(study: Study) -> Outcome | None:
    """The confirmatory verdict once every declared seed of both arms completed, else None."""
    stage = study.confirmatory
    folder = study.folder / stage.records if stage else None
    if (
        stage is None
        or folder is None
        or not ((folder / "jobs").is_dir() or (folder / "table.csv").is_file())
    ):
        return None
    cells = []
    for arm in ("a", "b"):
        given, overrides = getattr(stage, arm), arm_overrides(study, arm)
        if overrides is None:
            return None
        spec = CellSpec(str(given["label"]), overrides, (stage.records,))
        cell = gather(study, spec, stage.metric)
        if {int(float(s)) for s in cell.values} != set(stage.seeds):
            return None
        cells.append(cell)
    a, b = cells
    label = study.verdict.metric_label if stage.metric == study.verdict.metric else stage.metric
    found = compare(a, b, stage.test, stage.alpha, stage.mode, stage.words)
    return found.labelled("confirmatory", label)

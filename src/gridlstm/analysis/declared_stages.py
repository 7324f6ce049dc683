"""A claims study's pre-registered stages as declared: the select stages that choose a value
on validation for a later stage, the confirmatory stages whose words are the study's verdicts
(with their secondary arms), and the checks on their declared form.

Why a module of its own: the declaration's form is read here, apart from what the stages do
once declared (`gridlstm.analysis.confirmatory`: fresh seeds, the queue's cases, outcomes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridlstm.analysis.evidence import (
    CHOOSE_KEYS,
    CONFIRMATORY_KEYS,
    CONFIRMATORY_PROSE,
    QUEUE_KEYS,
    SECONDARY_KEYS,
    STAGE_KEYS,
    STAGE_KINDS,
    TESTS,
    Study,
    check_keys,
    fail,
    one_of,
    verdict_words,
)


@dataclass(frozen=True)
class Stage:
    """A stage that runs designed cases (``kind: designed``), and for ``kind: select`` then
    chooses one value by a rule on validation (e.g. a family's learning rate at a new budget)
    for a later stage to use; or (``kind: rule``) the cases a rule chooses from earlier
    stages' records, applied by the queue once they exist."""

    name: str
    kind: str
    declared: str
    records: str
    base: tuple[str, ...]
    cases: tuple[dict[str, Any], ...]
    choose: dict[str, str]  # empty for a designed stage
    grid: dict[str, list[Any]] = field(default_factory=dict)  # each case at each combination
    # the queue's own keys as declared (rule, frontier, needs, launcher: studies.spec)
    queue: dict[str, Any] = field(default_factory=dict)
    dry_run: tuple[str, ...] = ()  # added by dry_run=true to the study's (or DRY_RUN)


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
    censored_at: str = ""  # a time-to-threshold metric: a run without it is censored here
    secondary: tuple[Secondary, ...] = ()  # reported arms, run once both arms completed


@dataclass(frozen=True)
class Secondary:
    """One arm of a confirmatory stage with one knob changed, on the stage's seeds: reported
    against the arm it changes by the stage's test, never deciding."""

    label: str
    changes: str  # "a" or "b"
    knob: dict[str, Any]
    records: str


def parse_stages(path: Path, raw: Any) -> tuple[Stage | Confirmatory, ...]:
    if not isinstance(raw, list):
        raise fail(path, "stages: a list of stages (name, kind, records, cases)")
    found: list[Stage | Confirmatory] = []
    for i, given in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(given, dict):
            raise fail(path, f"{where}: a mapping (name, kind, records, cases)")
        if given.get("kind") == "confirmatory":
            rest = {k: v for k, v in given.items() if k != "kind"}
            found.append(parse_confirmatory(path, rest, where))
        else:
            found.append(parse_stage(path, where, given))
    for key in ("name", "records"):
        values = [getattr(stage, key) for stage in found]
        if twice := sorted({v for v in values if values.count(v) > 1}):
            raise fail(path, f"stages: two stages share {key} {twice[0]!r}")
    return tuple(found)


def parse_stage(path: Path, where: str, given: dict[str, Any]) -> Stage:
    """A designed stage (its cases, or a grid of them, as declared), a select stage (its
    cases, then a rule that chooses one value on validation) or a rule stage (the cases a
    rule chooses from earlier stages' records)."""
    check_keys(path, where, given, STAGE_KEYS)
    kind = one_of(path, f"{where}.kind", given.get("kind"), STAGE_KINDS)
    needed = {"name", "kind", "records"} | {
        "select": {"declared", "cases", "choose"},
        "rule": {"rule"},
    }.get(kind, set())
    if missing := sorted(needed - set(given)):
        raise fail(path, f"{where}: missing {missing[0]}:")
    cases, grid = given.get("cases"), given.get("grid") or {}
    if cases is not None and (
        not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases)
    ):
        raise fail(path, f"{where}.cases: a non-empty list of {{key: value}} (designed)")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise fail(path, f"{where}.grid: {{key: [values]}}, one job per combination")
    if kind == "rule" and cases is not None:
        raise fail(path, f"{where}: a rule stage's cases come from its rule: no cases:")
    if kind != "rule" and "rule" in given:
        raise fail(path, f"{where}.rule: only a rule stage (kind: rule) has one")
    if kind != "rule" and not (cases or grid):
        raise fail(path, f"{where}: cases: or grid: (the jobs it runs)")
    if kind != "select" and "choose" in given:
        raise fail(path, f"{where}.choose: only a select stage chooses a value (kind: select)")
    dry_run = given.get("dry_run") or []
    if not isinstance(dry_run, list):
        raise fail(path, f"{where}.dry_run: a list of overrides (e.g. task.datamodule.bits=8)")
    return Stage(
        name=str(given["name"]),
        kind=kind,
        declared=str(given.get("declared", "")),
        records=str(given["records"]),
        base=tuple(str(o) for o in given.get("base", [])),
        cases=tuple(dict(c) for c in cases or []),
        choose=parse_choose(path, where, given["choose"]) if kind == "select" else {},
        grid={str(k): list(v) for k, v in grid.items()},
        queue={k: given[k] for k in QUEUE_KEYS if k in given},
        dry_run=tuple(str(o) for o in dry_run),
    )


def parse_choose(path: Path, where: str, choose: Any) -> dict[str, str]:
    if not isinstance(choose, dict) or set(choose) - CHOOSE_KEYS or "key" not in choose:
        raise fail(path, f"{where}.choose: key:, metric: and mode: (the rule)")
    metric = str(choose.get("metric", "val/acc"))
    if not metric.startswith("val/"):
        raise fail(
            path,
            f"{where}.choose.metric={metric}: a rule chooses on validation (a val/ metric); "
            "the test split decides verdicts only",
        )
    mode = one_of(path, f"{where}.choose.mode", choose.get("mode", "max"), ("max", "min"))
    return {"key": str(choose["key"]), "metric": metric, "mode": mode}


def parse_secondary(path: Path, where: str, raw: Any) -> tuple[Secondary, ...]:
    if not isinstance(raw, list):
        raise fail(path, f"{where}: a list of arms (label, changes, knob, records)")
    found = []
    for i, given in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(given, dict) or set(given) != SECONDARY_KEYS:
            raise fail(path, f"{at}: exactly {', '.join(sorted(SECONDARY_KEYS))}")
        if not isinstance(given["knob"], dict) or not given["knob"]:
            raise fail(path, f"{at}.knob: the {{key: value}} it changes in its arm")
        changes = one_of(path, f"{at}.changes", given["changes"], ("a", "b"))
        found.append(Secondary(str(given["label"]), changes, dict(given["knob"]), given["records"]))
    return tuple(found)


def parse_confirmatory(path: Path, raw: Any, where: str = "confirmatory") -> Confirmatory:
    if not isinstance(raw, dict):
        raise fail(path, f"{where}: a mapping (name, declared, test, alpha, seeds, a, b)")
    check_keys(path, where, raw, CONFIRMATORY_KEYS)
    optional = {"budget", "base", "mode", "censored_at", "secondary", *CONFIRMATORY_PROSE}
    missing = sorted(CONFIRMATORY_KEYS - optional - set(raw))
    if missing:
        raise fail(path, f"{where}: missing {missing[0]}:")
    seeds = tuple(int(s) for s in raw["seeds"])
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise fail(path, f"{where}.seeds: two or more distinct seeds")
    arms = {}
    for arm in ("a", "b"):
        given = raw[arm]
        if not isinstance(given, dict) or not isinstance(given.get("overrides"), dict):
            raise fail(path, f"{where}.{arm}: label: and overrides: {{key: value}}")
        arms[arm] = given
    test = one_of(path, f"{where}.test", raw["test"], tuple(TESTS))
    mode = one_of(path, f"{where}.mode", raw.get("mode", "max"), ("max", "min"))
    censored_at = str(raw.get("censored_at") or "")
    if (test == "logrank") != bool(censored_at) or (censored_at and mode != "min"):
        raise fail(
            path,
            f"{where}: the log-rank test goes with a time to a threshold: test: logrank, "
            "censored_at: (the recorded value a run that never reaches it counts at, e.g. "
            "samples_seen) and mode: min, all three or none",
        )
    return Confirmatory(
        name=str(raw["name"]),
        declared=str(raw["declared"]),
        test=test,
        alpha=float(raw["alpha"]),
        metric=str(raw["metric"]),
        mode=mode,
        seeds=seeds,
        factor=tuple(str(k) for k in raw["factor"]),
        budget=tuple(str(k) for k in raw.get("budget", [])),
        records=str(raw["records"]),
        base=tuple(str(o) for o in raw.get("base", [])),
        a=arms["a"],
        b=arms["b"],
        words=verdict_words(path, f"{where}.words", raw["words"]),
        prose={k: " ".join(str(raw[k]).split()) for k in CONFIRMATORY_PROSE if k in raw},
        censored_at=censored_at,
        secondary=parse_secondary(path, f"{where}.secondary", raw.get("secondary", [])),
    )


def confirmatory_stages(study: Study) -> list[Confirmatory]:
    """The study's confirmatory stages: its ``confirmatory:`` block, then those declared
    under ``stages:`` (kind: confirmatory), in file order."""
    first = [study.confirmatory] if study.confirmatory else []
    return first + [s for s in study.stages if isinstance(s, Confirmatory)]


def run_stages(study: Study) -> list[Stage]:
    """The study's designed and select stages, in file order."""
    return [s for s in study.stages if isinstance(s, Stage)]


def select_stages(study: Study) -> list[Stage]:
    """The stages whose rule chooses a value a later stage reads (``chosen_by``)."""
    return [s for s in run_stages(study) if s.kind == "select"]

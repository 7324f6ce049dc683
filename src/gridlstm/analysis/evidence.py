"""A claims study as data: its declaration (``docs/claims/<study>/study.yaml``), the two cells
its verdict rests on, read from the study's committed records, and the verdict under its
stated test.

Why: a page's answer typed by hand drifts from its records (a p-value changed twenty-fold
still "matched" some number in a folder). Here the answer is computed: the declaration names
the cells (which records, which configuration), the metric, the test and the words for each
outcome, and `gridlstm.analysis.pages` writes the page's opening and the claims summary from
it. A declaration's free text holds no decimal number: results come from the records only.

A verdict is **exploratory** unless it comes from a **confirmatory** stage: one primary
comparison, its test, alpha and seeds (never used by the study before), committed before its
first job (`preregistration_problems`). Cells are chosen on validation; the verdict reads the
metric the declaration names (test, as a rule): `SELECTION_METRICS` says which split chose.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from gridlstm.analysis.frontier import matches, seed_of
from gridlstm.analysis.stages import number, read_jobs
from gridlstm.analysis.verdicts import welch
from gridlstm.run.errors import ConfigError

CLAIMS_DIR = Path("docs/claims")
DECLARATION = "study.yaml"
SOURCES = ("paper", "secondary", "ours")
SCOPES = ("exploratory", "confirmatory")
TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U"}
CLAIMS = ("addition", "memorization", "parity", "charlm", "mnist", "design")
PROSE = ("statement", "protocol", "question", "cannot_say", "setup")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")
CELL_KEYS = {"label", "where", "records", "defaults"}
VERDICT_KEYS = {"scope", "metric", "mode", "test", "alpha", "records", "a", "b", "words"}
VERDICT_KEYS |= {"chosen_on", "stage", "metric_label"}
CONFIRMATORY_KEYS = {"name", "declared", "test", "alpha", "metric", "mode", "seeds", "factor"}
CONFIRMATORY_KEYS |= {"budget", "records", "a", "b", "words", "base"}
STUDY_KEYS = {"claim", "source", "locator", "page", "verdict", "confirmatory", "stages", *PROSE}
STAGE_KEYS = {"name", "kind", "declared", "records", "base", "cases", "choose"}
STAGE_KINDS = ("select",)  # a designed grid whose rule then chooses one value on validation
CHOOSE_KEYS = {"key", "metric", "mode"}
DRY_RUN = [
    "task.datamodule.batch_size=8",
    "task.datamodule.batches_per_epoch=2",
    "task.datamodule.val_size=16",
    "task.datamodule.test_size=16",
    "trainer.max_steps=4",
]


@dataclass(frozen=True)
class CellSpec:
    label: str
    where: dict[str, Any]
    records: tuple[str, ...]
    # values a run had without naming them: an option a job's overrides predate (its default)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The comparison a study's answer rests on, and the words for its three outcomes."""

    scope: str
    metric: str
    mode: str
    test: str
    alpha: float
    a: CellSpec
    b: CellSpec
    words: dict[str, str]
    chosen_on: str
    stage: str = ""
    metric_label: str = ""  # how a page names the metric (e.g. test exact-match)


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


@dataclass(frozen=True)
class Study:
    name: str
    folder: Path
    claim: str
    source: str
    locator: str
    prose: dict[str, str]
    verdict: Verdict
    confirmatory: Confirmatory | None = None
    stages: tuple[Stage, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One configuration's completed runs: the metric by seed, and compute per run."""

    label: str
    values: dict[str, float]
    compute: tuple[float, ...]
    sources: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values.values()) if self.n > 1 else math.nan


@dataclass(frozen=True)
class Outcome:
    a: Cell
    b: Cell
    p: float
    word: str
    ratio: float  # A's mean multiply-adds per run over B's (nan where unrecorded)
    test: str
    scope: str
    metric: str
    extra: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def _keys(path: Path, where: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise _fail(
            path, f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(allowed))}"
        )


def _cell(path: Path, where: str, raw: Any, records: list[str]) -> CellSpec:
    if not isinstance(raw, dict) or "label" not in raw or "where" not in raw:
        raise _fail(path, f"{where}: a cell needs label: and where: {{column: value}}")
    _keys(path, where, raw, CELL_KEYS)
    found = [str(r) for r in raw.get("records", records)]
    if not found:
        raise _fail(path, f"{where}: no records: name the folders its runs are in")
    for record in found:
        folder = path.parent / record
        if not (folder / "jobs").is_dir() and not (folder / "table.csv").is_file():
            raise _fail(
                path,
                f"{where}: records {record!r} holds no jobs/ or table.csv "
                f"(folders are relative to {path.parent})",
            )
    return CellSpec(
        str(raw["label"]), dict(raw["where"]), tuple(found), dict(raw.get("defaults", {}))
    )


def _choice(path: Path, where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(path, f"{where}={value!r}: choose one of {', '.join(choices)}")
    return str(value)


def _words(path: Path, where: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or set(raw) != {"a", "b", "within"}:
        raise _fail(path, f"{where}: words needs exactly a:, b: and within: (the verdict words)")
    return {k: str(v) for k, v in raw.items()}


def _verdict(path: Path, raw: Any) -> Verdict:
    if not isinstance(raw, dict):
        raise _fail(path, "verdict: a mapping with metric, mode, test, a, b, words")
    _keys(path, "verdict", raw, VERDICT_KEYS)
    for key in ("metric", "a", "b", "words", "chosen_on"):
        if key not in raw:
            raise _fail(path, f"verdict: missing {key}:")
    records = [str(r) for r in raw.get("records", [])]
    return Verdict(
        scope=_choice(path, "verdict.scope", raw.get("scope", "exploratory"), SCOPES),
        metric=str(raw["metric"]),
        mode=_choice(path, "verdict.mode", raw.get("mode", "max"), ("max", "min")),
        test=_choice(path, "verdict.test", raw.get("test", "welch"), tuple(TESTS)),
        alpha=float(raw.get("alpha", 0.05)),
        a=_cell(path, "verdict.a", raw["a"], records),
        b=_cell(path, "verdict.b", raw["b"], records),
        words=_words(path, "verdict.words", raw["words"]),
        chosen_on=str(raw["chosen_on"]),
        stage=str(raw.get("stage", "")),
        metric_label=str(raw.get("metric_label", raw["metric"])),
    )


def _stages(path: Path, raw: Any) -> tuple[Stage, ...]:
    if not isinstance(raw, list):
        raise _fail(path, "stages: a list of stages (name, kind, declared, records, cases)")
    found = []
    for i, given in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(given, dict):
            raise _fail(path, f"{where}: a mapping (name, kind, declared, records, cases)")
        _keys(path, where, given, STAGE_KEYS)
        missing = sorted({"name", "kind", "declared", "records", "cases", "choose"} - set(given))
        if missing:
            raise _fail(path, f"{where}: missing {missing[0]}:")
        choose = given["choose"]
        if not isinstance(choose, dict) or set(choose) - CHOOSE_KEYS or "key" not in choose:
            raise _fail(path, f"{where}.choose: key:, metric: and mode: (the rule)")
        metric = str(choose.get("metric", "val/acc"))
        if not metric.startswith("val/"):
            raise _fail(
                path,
                f"{where}.choose.metric={metric}: a rule chooses on validation (a val/ metric); "
                "the test split decides verdicts only",
            )
        cases = given["cases"]
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
            raise _fail(path, f"{where}.cases: a non-empty list of {{key: value}} (designed)")
        found.append(
            Stage(
                name=str(given["name"]),
                kind=_choice(path, f"{where}.kind", given["kind"], STAGE_KINDS),
                declared=str(given["declared"]),
                records=str(given["records"]),
                base=tuple(str(o) for o in given.get("base", [])),
                cases=tuple(dict(c) for c in cases),
                choose={
                    "key": str(choose["key"]),
                    "metric": metric,
                    "mode": _choice(
                        path, f"{where}.choose.mode", choose.get("mode", "max"), ("max", "min")
                    ),
                },
            )
        )
    names = [stage.name for stage in found]
    if len(set(names)) != len(names):
        raise _fail(path, "stages: two stages share a name")
    return tuple(found)


def _confirmatory(path: Path, raw: Any) -> Confirmatory:
    if not isinstance(raw, dict):
        raise _fail(path, "confirmatory: a mapping (name, declared, test, alpha, seeds, a, b)")
    _keys(path, "confirmatory", raw, CONFIRMATORY_KEYS)
    missing = sorted(CONFIRMATORY_KEYS - {"budget", "base", "mode"} - set(raw))
    if missing:
        raise _fail(path, f"confirmatory: missing {missing[0]}:")
    seeds = tuple(int(s) for s in raw["seeds"])
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise _fail(path, "confirmatory.seeds: two or more distinct seeds")
    arms = {}
    for arm in ("a", "b"):
        given = raw[arm]
        if not isinstance(given, dict) or not isinstance(given.get("overrides"), dict):
            raise _fail(path, f"confirmatory.{arm}: label: and overrides: {{key: value}}")
        arms[arm] = given
    return Confirmatory(
        name=str(raw["name"]),
        declared=str(raw["declared"]),
        test=_choice(path, "confirmatory.test", raw["test"], tuple(TESTS)),
        alpha=float(raw["alpha"]),
        metric=str(raw["metric"]),
        mode=_choice(path, "confirmatory.mode", raw.get("mode", "max"), ("max", "min")),
        seeds=seeds,
        factor=tuple(str(k) for k in raw["factor"]),
        budget=tuple(str(k) for k in raw.get("budget", [])),
        records=str(raw["records"]),
        base=tuple(str(o) for o in raw.get("base", [])),
        a=arms["a"],
        b=arms["b"],
        words=_words(path, "confirmatory.words", raw["words"]),
    )


def load(path: Path) -> Study:
    """A study's declaration, checked: one `ConfigError` naming the file and the fix."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise _fail(path, f"not a readable YAML file ({error.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "a mapping with claim, source, statement, protocol, verdict")
    _keys(path, "study", raw, STUDY_KEYS)
    for key in ("claim", "source", "statement", "protocol", "question", "cannot_say", "verdict"):
        if key not in raw:
            raise _fail(path, f"missing {key}:")
    prose = {k: " ".join(str(raw.get(k, "")).split()) for k in PROSE}
    for key, text in prose.items():
        if found := DECIMAL.search(text):
            raise _fail(
                path,
                f"{key} holds the number {found.group()}: results come from the records "
                "(the verdict's cells), not from typed text",
            )
    source = _choice(path, "source", raw["source"], SOURCES)
    if source == "secondary" and not raw.get("locator"):
        raise _fail(path, "source: secondary needs locator: (a URL or owner/repository)")
    study = Study(
        name=path.parent.name,
        folder=path.parent,
        claim=_choice(path, "claim", raw["claim"], CLAIMS),
        source=source,
        locator=str(raw.get("locator", "")),
        prose=prose,
        verdict=_verdict(path, raw["verdict"]),
        confirmatory=_confirmatory(path, raw["confirmatory"]) if "confirmatory" in raw else None,
        stages=_stages(path, raw["stages"]) if "stages" in raw else (),
    )
    if study.confirmatory:
        check_confirmatory(path, study)
    return study


def declarations(root: Path = CLAIMS_DIR) -> list[Path]:
    return sorted(root.glob(f"*/{DECLARATION}"))


def load_all(root: Path = CLAIMS_DIR) -> list[Study]:
    """Every declared study, in the summary's order (by claim, then name)."""
    found = [load(path) for path in declarations(root)]
    return sorted(found, key=lambda s: (CLAIMS.index(s.claim), s.name))


def rows_of(folder: Path) -> list[dict[str, Any]]:
    """A records folder's completed runs: its jobs (overrides and record) where the queue
    copied them, else the rows of its table.csv (a sweep's table)."""
    if (folder / "jobs").is_dir():
        return read_jobs(folder)
    import csv

    with (folder / "table.csv").open(newline="") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if row.get("status", "completed") in ("", "completed")
        ]


def gather(study: Study, spec: CellSpec, metric: str) -> Cell:
    """The cell's runs over its records, one per seed; a seed found twice is refused (a job
    copied into two stages would count twice)."""
    values: dict[str, float] = {}
    compute: list[float] = []
    for record in spec.records:
        for found in rows_of(study.folder / record):
            row = {**spec.defaults, **found}
            if not matches(row, spec.where):
                continue
            value = number(row.get(metric))
            if value is None:
                continue
            seed = seed_of(row, None)
            if seed in values:
                raise ConfigError(
                    f"{study.folder / DECLARATION}: cell {spec.label!r} has seed {seed} twice "
                    f"(in {record}); narrow its where: or its records:"
                )
            values[seed] = value
            macs, samples = number(row.get("macs_per_sample")), number(row.get("samples_seen"))
            if macs is not None and samples is not None:
                compute.append(macs * samples)
    if not values:
        raise ConfigError(
            f"{study.folder / DECLARATION}: cell {spec.label!r} matches no completed run with "
            f"{metric} in {', '.join(spec.records)}; check its where: against the jobs"
        )
    complete = len(compute) == len(values)
    return Cell(spec.label, values, tuple(compute) if complete else (), spec.records)


def test_p(test: str, a: Cell, b: Cell) -> float:
    """The two-sided p of ``test`` between the cells (nan below two runs a cell)."""
    if a.n < 2 or b.n < 2:
        return math.nan
    if test == "mannwhitney":
        return float(
            stats.mannwhitneyu(
                list(a.values.values()), list(b.values.values()), alternative="two-sided"
            ).pvalue
        )
    from gridlstm.analysis.verdicts import Cell as WelchCell

    with warnings.catch_warnings():  # nearly equal cells: scipy warns, and p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return welch(
            WelchCell(a.label, tuple(a.values.values())),
            WelchCell(b.label, tuple(b.values.values())),
        ).p


def decide(a: Cell, b: Cell, p: float, alpha: float, mode: str, words: dict[str, str]) -> str:
    if math.isnan(p):
        return "cannot decide (fewer than two runs a cell)"
    if p >= alpha:
        return words["within"]
    a_better = a.mean > b.mean if mode == "max" else a.mean < b.mean
    return words["a"] if a_better else words["b"]


def outcome(study: Study) -> Outcome:
    """The study's answer: its confirmatory stage's, once every seed of both arms ran, else
    its declared (exploratory) verdict."""
    verdict = study.verdict
    a = gather(study, verdict.a, verdict.metric)
    b = gather(study, verdict.b, verdict.metric)
    p = test_p(verdict.test, a, b)
    ratio = (
        statistics.fmean(a.compute) / statistics.fmean(b.compute)
        if a.compute and b.compute
        else math.nan
    )
    word = decide(a, b, p, verdict.alpha, verdict.mode, verdict.words)
    return Outcome(a, b, p, word, ratio, verdict.test, verdict.scope, verdict.metric_label)


# --- confirmatory stages -------------------------------------------------------------------


def used_seeds(study: Study) -> set[int]:
    """Every seed any run of the study's records used (every jobs/ or table.csv below it)."""
    seen: set[int] = set()
    folders = {p.parents[2] for p in study.folder.rglob("jobs/*/metrics.json")}
    folders |= {p.parent for p in study.folder.rglob("table.csv")}
    confirm = study.folder / study.confirmatory.records if study.confirmatory else None
    for folder in folders:
        if confirm is not None and folder.resolve() == confirm.resolve():
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
        raise _fail(
            path,
            f"confirmatory.seeds: seed {reused[0]} was used by an earlier stage of the study; "
            "a confirmatory stage needs fresh seeds",
        )
    names = {s.name for s in study.stages}
    for arm in ("a", "b"):
        for key, value in getattr(stage, arm)["overrides"].items():
            if isinstance(value, dict) and value.get("chosen_by") not in names:
                raise _fail(
                    path,
                    f"confirmatory.{arm}.overrides.{key}: chosen_by names no declared stage; "
                    f"valid: {', '.join(sorted(names)) or 'none declared'}",
                )
    allowed = set(stage.factor) | set(stage.budget)
    a, b = stage.a["overrides"], stage.b["overrides"]
    for key in sorted(set(a) | set(b)):
        if key not in allowed and str(a.get(key)) != str(b.get(key)):
            raise _fail(
                path,
                f"confirmatory: arms differ in {key} ({a.get(key)!r} against {b.get(key)!r}), "
                f"which is neither the compared factor ({', '.join(stage.factor)}) nor the "
                f"budget ({', '.join(stage.budget) or 'none named'})",
            )


def chosen(study: Study, name: str) -> Any | None:
    """The value a select stage's rule chose (its ``choose.key`` in the completed run best on
    its validation metric), or None until every one of its cases has completed."""
    stage = next(s for s in study.stages if s.name == name)
    folder = study.folder / stage.records
    if not (folder / "jobs").is_dir():
        return None
    rows = rows_of(folder)
    done = [r for r in rows if any(matches(r, case) for case in stage.cases)]
    if len(done) < len(stage.cases):
        return None
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
    p = test_p(stage.test, a, b)
    ratio = (
        statistics.fmean(a.compute) / statistics.fmean(b.compute)
        if a.compute and b.compute
        else math.nan
    )
    word = decide(a, b, p, stage.alpha, stage.mode, stage.words)
    return Outcome(a, b, p, word, ratio, stage.test, "confirmatory", stage.metric)


def first_commit_time(path: Path, needle: str) -> float | None:
    """When ``needle`` first entered ``path`` in git history (unix time), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "log", "--format=%ct", "-S", needle, "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return float(out[-1]) if out else None


def preregistration_problems(study: Study) -> list[str]:
    """A confirmatory stage must be committed before its first job started: its queue record's
    start against the commit that added its name to the declaration."""
    stage = study.confirmatory
    if stage is None:
        return []
    queue = study.folder / stage.records / "queue.json"
    if not queue.is_file():
        return []
    import json
    from datetime import datetime

    record = json.loads(queue.read_text())
    starts = [r.get("started") for r in record.get("runs") or []] + [record.get("started")]
    starts = sorted(s for s in starts if s)
    if not starts:
        return []
    started = starts[0]  # the first queue run's start: the later ones rewrite "started"
    began = datetime.strptime(started, "%Y-%m-%d %H:%M:%S").timestamp()
    committed = first_commit_time(study.folder / DECLARATION, f"name: {stage.name}")
    if committed is None:
        return [
            f"{study.folder / DECLARATION}: confirmatory {stage.name!r} is not committed, "
            f"but its jobs began {started}"
        ]
    if committed > began:
        return [
            f"{study.folder / DECLARATION}: confirmatory {stage.name!r} was committed after its "
            f"first job began ({started}); declare a new confirmatory stage and run it afresh"
        ]
    return []

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
first job (`gridlstm.analysis.confirmatory`). Cells are chosen on validation; the verdict reads the
metric the declaration names (test, as a rule): `SELECTION_METRICS` says which split chose.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scipy import stats

from gridlstm.analysis import survival
from gridlstm.analysis.counted_macs import macs_of
from gridlstm.analysis.frontier import matches, seed_of
from gridlstm.analysis.job_records import rows_of
from gridlstm.analysis.stages import number
from gridlstm.analysis.verdicts import Cell as WelchCell
from gridlstm.analysis.verdicts import welch
from gridlstm.run.errors import ConfigError

CLAIMS_DIR = Path("docs/claims")
DECLARATION = "study.yaml"
SOURCES = ("paper", "secondary", "ours")
SCOPES = ("exploratory", "confirmatory")
TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U", "logrank": "log-rank test"}
# a summary row's p column
SHORT_TESTS = {"welch": "Welch", "mannwhitney": "Mann-Whitney", "logrank": "log-rank"}
CLAIMS = ("addition", "memorization", "parity", "charlm", "mnist", "design")
PROSE = ("statement", "protocol", "question", "cannot_say", "setup")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")
CELL_KEYS = {"label", "where", "records", "defaults"}
VERDICT_KEYS = {"scope", "metric", "mode", "test", "alpha", "records", "a", "b", "words"}
VERDICT_KEYS |= {"chosen_on", "stage", "metric_label"}
CONFIRMATORY_KEYS = {"name", "declared", "test", "alpha", "metric", "mode", "seeds", "factor"}
CONFIRMATORY_KEYS |= {"budget", "records", "a", "b", "words", "base", "question", "cannot_say"}
# a time-to-threshold metric: a run without it counts as censored at this recorded value
CONFIRMATORY_KEYS |= {"censored_at", "secondary"}
SECONDARY_KEYS = {"label", "changes", "knob", "records"}  # an arm with one knob changed
# a confirmatory stage's own prose, shown once it ran; the DESCRIPTIVE part says what ran (so
# it may be written after the runs), the question and what it cannot say may not change
CONFIRMATORY_PROSE = ("question", "cannot_say", "protocol", "setup", "chosen_on")
DESCRIPTIVE = ("protocol", "setup", "chosen_on")
CONFIRMATORY_KEYS |= set(CONFIRMATORY_PROSE)
STUDY_KEYS = {
    "claim",
    "source",
    "locator",
    "page",
    "verdict",
    "confirmatory",
    "stages",
    "tables",
    "reports",  # what its tables: cannot state (gridlstm.analysis.reports)
    "quoted",  # numbers the page quotes from its sources, for ties (gridlstm.analysis.ties)
    "superseded_by",  # the study whose row answers this one's question since (its summary says)
    "axes",  # what each confirmatory stage holds equal (its answer and summary row say)
    "dry_run",  # a dry run's tiny sizes for this study's task, in place of DRY_RUN
    *PROSE,
}
STAGE_KEYS = {"name", "kind", "declared", "records", "base", "cases", "grid", "choose"}
QUEUE_KEYS = ("rule", "frontier", "needs", "launcher")  # the queue's own (studies.spec)
STAGE_KEYS |= {*QUEUE_KEYS, "dry_run"}
# designed: cases (or a grid of them) run as declared; select: designed cases whose rule then
# chooses one value on validation; rule: cases a rule chooses from earlier stages' records
# (studies.rules); confirmatory: a pre-registered comparison (a confirmatory: block's keys)
STAGE_KINDS = ("designed", "select", "rule", "confirmatory")
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
class Study:
    name: str
    folder: Path
    claim: str
    source: str
    locator: str
    prose: dict[str, str]
    verdict: Verdict
    # gridlstm.analysis.confirmatory's Confirmatory and Stages (typed loosely: that module
    # builds on this one, not the other way round)
    confirmatory: Any = None
    stages: tuple[Any, ...] = ()
    tables: dict[str, Any] = field(default_factory=dict)  # record_tables.TableSpec by name
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # gridlstm...reports
    superseded_by: str = ""
    axes: dict[str, str] = field(default_factory=dict)  # confirmatory stage: what it holds equal
    dry_run: tuple[str, ...] = ()  # its stages' dry-run sizes, in place of DRY_RUN


@dataclass(frozen=True)
class Cell:
    """One configuration's completed runs: the metric by seed, and compute per run."""

    label: str
    values: dict[str, float]
    compute: tuple[float, ...]  # multiply-adds per run (empty where any run lacks them)
    sources: tuple[str, ...]
    params: tuple[float, ...] = ()  # per run, as compute
    samples: tuple[float, ...] = ()
    # a time-to-threshold metric: whether each seed's run reached it (False: censored, its
    # value the recorded `censored_at`); None: every value is an observation
    reached: dict[str, bool] | None = None

    def times(self) -> tuple[list[float], list[bool]]:
        """(values, reached) in seed order, for `gridlstm.analysis.survival`."""
        seeds = list(self.values)
        reached = self.reached or {}
        return [self.values[s] for s in seeds], [reached.get(s, True) for s in seeds]

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

    def labelled(self, scope: str, metric: str) -> Outcome:
        return replace(self, scope=scope, metric=metric)


def fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def check_keys(path: Path, where: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise fail(
            path, f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(allowed))}"
        )


def _cell(
    path: Path, where: str, raw: Any, records: list[str], planned: frozenset[str]
) -> CellSpec:
    if not isinstance(raw, dict) or "label" not in raw or "where" not in raw:
        raise fail(path, f"{where}: a cell needs label: and where: {{column: value}}")
    check_keys(path, where, raw, CELL_KEYS)
    found = [str(r) for r in raw.get("records", records)]
    if not found:
        raise fail(path, f"{where}: no records: name the folders its runs are in")
    for record in found:
        folder = path.parent / record
        if record in planned:  # a declared stage's records, before it has run
            continue
        if not (folder / "jobs").is_dir() and not (folder / "table.csv").is_file():
            raise fail(
                path,
                f"{where}: records {record!r} holds no jobs/ or table.csv "
                f"(folders are relative to {path.parent})",
            )
    return CellSpec(
        str(raw["label"]), dict(raw["where"]), tuple(found), dict(raw.get("defaults", {}))
    )


def one_of(path: Path, where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise fail(path, f"{where}={value!r}: choose one of {', '.join(choices)}")
    return str(value)


def verdict_words(path: Path, where: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or set(raw) != {"a", "b", "within"}:
        raise fail(path, f"{where}: words needs exactly a:, b: and within: (the verdict words)")
    return {k: str(v) for k, v in raw.items()}


def parse_verdict(path: Path, raw: Any, planned: frozenset[str] = frozenset()) -> Verdict:
    """The declaration's verdict; its cells' records must exist unless ``planned`` (the
    records of the study's declared stages) names them."""
    if not isinstance(raw, dict):
        raise fail(path, "verdict: a mapping with metric, mode, test, a, b, words")
    check_keys(path, "verdict", raw, VERDICT_KEYS)
    for key in ("metric", "a", "b", "words", "chosen_on"):
        if key not in raw:
            raise fail(path, f"verdict: missing {key}:")
    records = [str(r) for r in raw.get("records", [])]
    return Verdict(
        scope=one_of(path, "verdict.scope", raw.get("scope", "exploratory"), SCOPES),
        metric=str(raw["metric"]),
        mode=one_of(path, "verdict.mode", raw.get("mode", "max"), ("max", "min")),
        test=one_of(path, "verdict.test", raw.get("test", "welch"), tuple(TESTS)),
        alpha=float(raw.get("alpha", 0.05)),
        a=_cell(path, "verdict.a", raw["a"], records, planned),
        b=_cell(path, "verdict.b", raw["b"], records, planned),
        words=verdict_words(path, "verdict.words", raw["words"]),
        chosen_on=str(raw["chosen_on"]),
        stage=str(raw.get("stage", "")),
        metric_label=str(raw.get("metric_label", raw["metric"])),
    )


class NoRuns(ConfigError):
    """A cell that matches no completed run (yet): a stage still running catches it."""


def gather(study: Study, spec: CellSpec, metric: str, censored_at: str = "") -> Cell:
    """The cell's runs over its records, one per seed; a seed found twice is refused (a job
    copied into two stages would count twice). With ``censored_at``, a run without ``metric``
    (a threshold never reached) counts at that recorded value, censored."""
    values: dict[str, float] = {}
    reached: dict[str, bool] = {}
    compute: list[float] = []
    params: list[float] = []
    samples_seen: list[float] = []
    for record in spec.records:
        for found in rows_of(study.folder / record):
            row = {**spec.defaults, **found}
            if not matches(row, spec.where):
                continue
            value = number(row.get(metric))
            got = value is not None
            if not got and censored_at:
                value = number(row.get(censored_at))
            if value is None:
                continue
            seed = seed_of(row, None)
            if seed in values:
                raise ConfigError(
                    f"{study.folder / DECLARATION}: cell {spec.label!r} has seed {seed} twice "
                    f"(in {record}); narrow its where: or its records:"
                )
            values[seed], reached[seed] = value, got
            macs, samples = number(row.get("macs_per_sample")), number(row.get("samples_seen"))
            if macs is None and "job" in found:  # a job run before runs recorded them
                macs = macs_of(study.folder / record / "jobs" / str(found["job"]))
            if macs is not None and samples is not None:
                compute.append(macs * samples)
            if (count := number(row.get("params"))) is not None:
                params.append(count)
            if samples is not None:
                samples_seen.append(samples)
    if not values:
        raise NoRuns(
            f"{study.folder / DECLARATION}: cell {spec.label!r} matches no completed run with "
            f"{metric} in {', '.join(spec.records)}; check its where: against the jobs"
        )

    def complete(per_run: list[float]) -> tuple[float, ...]:
        return tuple(per_run) if len(per_run) == len(values) else ()

    return Cell(
        spec.label,
        values,
        complete(compute),
        spec.records,
        complete(params),
        complete(samples_seen),
        reached if censored_at else None,
    )


def p_value(test: str, a: Cell, b: Cell) -> float:
    """The two-sided p of ``test`` between the cells (nan below two runs a cell)."""
    if a.n < 2 or b.n < 2:
        return math.nan
    if test == "logrank":
        return survival.logrank(a.times(), b.times())
    if test == "mannwhitney":
        return float(
            stats.mannwhitneyu(
                list(a.values.values()), list(b.values.values()), alternative="two-sided"
            ).pvalue
        )
    return welch(
        WelchCell(a.label, tuple(a.values.values())), WelchCell(b.label, tuple(b.values.values()))
    ).p


def centre_of(test: str) -> Callable[[Iterable[float]], float]:
    """The centre a test compares: medians for Mann-Whitney's ranks, else means (Welch's t)."""
    return statistics.median if test == "mannwhitney" else statistics.fmean


def ahead(a: Cell, b: Cell, test: str, mode: str) -> int:
    """1 where A is ahead, -1 where B is, 0 for neither, by what the test compares: means
    for Welch's t, medians for Mann-Whitney's ranks, for the log-rank test which arm reaches
    the threshold sooner (`gridlstm.analysis.survival.sooner`)."""
    if test == "logrank":
        return survival.sooner(a.times(), b.times())
    centre = centre_of(test)
    first, second = centre(a.values.values()), centre(b.values.values())
    if first == second:
        return 0
    return 1 if (first > second) == (mode == "max") else -1


def decide(
    a: Cell, b: Cell, p: float, alpha: float, mode: str, words: dict[str, str], test: str = "welch"
) -> str:
    """The verdict word: within the spread, or the word of the cell ahead (`ahead`)."""
    if math.isnan(p):
        if test == "logrank" and a.n > 1 and b.n > 1:
            return "cannot decide (no run of either arm reached the threshold)"
        return "cannot decide (fewer than two runs a cell)"
    if p >= alpha:
        return words["within"]
    return words["a"] if ahead(a, b, test, mode) > 0 else words["b"]


def outcome(study: Study) -> Outcome:
    """The study's declared verdict (`gridlstm.analysis.confirmatory` gives a confirmatory
    stage's, once it has run)."""
    verdict = study.verdict
    a = gather(study, verdict.a, verdict.metric)
    b = gather(study, verdict.b, verdict.metric)
    return compare(a, b, verdict.test, verdict.alpha, verdict.mode, verdict.words).labelled(
        verdict.scope, verdict.metric_label
    )


def compare(a: Cell, b: Cell, test: str, alpha: float, mode: str, words: dict[str, str]) -> Outcome:
    """Two cells under a stated test: p, the verdict word, the multiply-adds ratio."""
    p = p_value(test, a, b)
    ratio = (
        statistics.fmean(a.compute) / statistics.fmean(b.compute)
        if a.compute and b.compute
        else math.nan
    )
    word = decide(a, b, p, alpha, mode, words, test)
    return Outcome(a, b, p, word, ratio, test, "", "")

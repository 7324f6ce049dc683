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
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from scipy import stats

from gridlstm.analysis import survival
from gridlstm.analysis.counted_macs import macs_of
from gridlstm.analysis.declared import DECLARATION, CellSpec, Study
from gridlstm.analysis.frontier import matches, seed_of
from gridlstm.analysis.job_records import rows_of
from gridlstm.analysis.stages import number
from gridlstm.analysis.verdicts import Cell as WelchCell
from gridlstm.analysis.verdicts import welch
from gridlstm.run.errors import ConfigError


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
                macs = macs_of(study.folder / record / "jobs" / str(found["job"]), spec.defaults)
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

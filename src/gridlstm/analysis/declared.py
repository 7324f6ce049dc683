"""A claims study's declaration (``docs/claims/<study>/study.yaml``) as typed data: the verdict
and its two cells, the stages that choose, run and confirm, each with the keys it may have.

Why pydantic models: the declaration's form (which keys, their types and choices, what goes
with what) is stated once, here, and read by the library rather than by hand-written checks;
`explain` turns the first thing wrong into the suite's one line naming the key and the valid
choices. What needs the study's folder (its records, the seeds earlier stages used) is checked
after, by `gridlstm.analysis.declaration`.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from gridlstm.run.errors import ConfigError

CLAIMS_DIR = Path("docs/claims")
DECLARATION = "study.yaml"
Claim = Literal["addition", "memorization", "parity", "charlm", "mnist", "design"]
CLAIMS: tuple[str, ...] = get_args(Claim)  # the summary's order
Test = Literal["welch", "mannwhitney", "logrank"]
TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U", "logrank": "log-rank test"}
SHORT_TESTS = {"welch": "Welch", "mannwhitney": "Mann-Whitney", "logrank": "log-rank"}  # p column
Mode = Literal["max", "min"]
PROSE = ("statement", "protocol", "question", "cannot_say", "setup")
# a confirmatory stage's own prose, shown once it ran; the DESCRIPTIVE part says what ran (so
# it may be written after the runs), the question and what it cannot say may not change
CONFIRMATORY_PROSE = ("question", "cannot_say", "protocol", "setup", "chosen_on")
DESCRIPTIVE = ("protocol", "setup", "chosen_on")
STAGE_KINDS = ("designed", "select", "rule", "confirmatory")
QUEUE_KEYS = ("rule", "frontier", "needs", "launcher")  # the queue's own (studies.spec)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")


def fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _untyped(text: str) -> str:
    if found := DECIMAL.search(text):
        raise ValueError(
            f"holds the number {found.group()}: results come from the records (the "
            "verdict's cells), not from typed text"
        )
    return text


def _three_words(words: dict[str, str]) -> dict[str, str]:
    if odd := sorted({"a", "b", "within"} ^ set(words)):
        what = "missing" if odd[0] not in words else "unknown"
        raise ValueError(f"{what} {odd[0]}: the verdict's words are exactly a, b and within")
    return words


def _day(value: Any) -> Any:
    """YAML reads an unquoted 2026-11-29 as a date, a quoted one as text: either is one day."""
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat() if value != "" else value
    except ValueError:
        raise ValueError(f"a date, YYYY-MM-DD, not {value!r}") from None


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a number, not {value}")
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]  # YAML's true is no number here
Day = Annotated[str, BeforeValidator(_day)]
Squashed = Annotated[str, AfterValidator(_squash)]
Prose = Annotated[str, AfterValidator(_squash), AfterValidator(_untyped)]
Words = Annotated[dict[str, str], AfterValidator(_three_words)]
Texts = tuple[str, ...]


class Declared(BaseModel):
    """A part of a declaration: read-only, and a key it does not know is refused by name with
    the valid ones (pydantic's ``extra="forbid"`` would refuse it without naming them)."""

    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(cls.model_fields))):
            valid = ", ".join(sorted(cls.model_fields))
            raise ValueError(f"unknown key {unknown[0]!r}; valid: {valid}")
        return data


class CellSpec(Declared):
    """One side of a verdict: which runs (records) with which configuration (where)."""

    label: str
    where: dict[str, Any]
    records: Texts = ()
    # values a run had without naming them: an option a job's overrides predate (its default)
    defaults: dict[str, Any] = {}


class Verdict(Declared):
    """The comparison a study's answer rests on, and the words for its three outcomes."""

    scope: Literal["exploratory", "confirmatory"] = "exploratory"
    metric: str
    metric_label: str = ""  # how a page names the metric (e.g. test exact-match)
    mode: Mode = "max"
    test: Test = "welch"
    alpha: float = 0.05
    records: Texts = ()  # the cells' records, where a cell names none of its own
    a: CellSpec
    b: CellSpec
    words: Words
    chosen_on: str
    stage: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shared(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        found = {"metric_label": data["metric"], **data} if "metric" in data else dict(data)
        for arm in ("a", "b"):
            if isinstance(data.get(arm), dict) and "records" not in data[arm]:
                found[arm] = {**data[arm], "records": data.get("records", [])}
        return found

    @model_validator(mode="after")
    def _recorded(self) -> Verdict:
        for arm in ("a", "b"):
            if not getattr(self, arm).records:
                raise ValueError(f"{arm}: no records: name the folders its runs are in")
        return self


class Arm(Declared):
    """A confirmatory arm; a value ``{chosen_by: <select stage>}`` waits for that choice."""

    label: str
    overrides: dict[str, Any]


class Secondary(Declared):
    """One arm of a confirmatory stage with one knob changed, on the stage's seeds: reported
    against the arm it changes by the stage's test, never deciding."""

    label: str
    changes: Literal["a", "b"]
    knob: Annotated[dict[str, Any], Field(min_length=1)]
    records: str


class Confirmatory(Declared):
    """A pre-registered primary comparison: fixed (test, alpha, seeds, arms) before its runs."""

    kind: Literal["confirmatory"] = "confirmatory"
    name: str
    declared: Day
    test: Test
    alpha: float
    metric: str
    mode: Mode = "max"
    seeds: tuple[int, ...]
    factor: Texts
    budget: Texts = ()
    records: str
    base: Texts = ()
    a: Arm
    b: Arm
    words: Words
    # a time-to-threshold metric: a run without it counts as censored at this recorded value
    censored_at: Annotated[str, BeforeValidator(lambda v: v or "")] = ""
    secondary: tuple[Secondary, ...] = ()  # reported arms, run once both arms completed
    question: Squashed | None = None
    cannot_say: Squashed | None = None
    protocol: Squashed | None = None
    setup: Squashed | None = None
    chosen_on: Squashed | None = None

    @property
    def prose(self) -> dict[str, str]:
        """Its own `CONFIRMATORY_PROSE`, shown once it has run."""
        return {k: v for k in CONFIRMATORY_PROSE if (v := getattr(self, k)) is not None}

    @model_validator(mode="after")
    def _form(self) -> Confirmatory:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: two or more distinct seeds")
        if (self.test == "logrank") != bool(self.censored_at) or (
            self.censored_at and self.mode != "min"
        ):
            raise ValueError(
                "the log-rank test goes with a time to a threshold: test: logrank, "
                "censored_at: (the recorded value a run that never reaches it counts at, e.g. "
                "samples_seen) and mode: min, all three or none"
            )
        return self


class Choose(Declared):
    """A select stage's rule: the value of ``key`` in its run best on ``metric``."""

    key: str
    metric: str = "val/acc"
    mode: Mode = "max"

    @model_validator(mode="after")
    def _on_validation(self) -> Choose:
        if not self.metric.startswith("val/"):
            raise ValueError(
                f"metric={self.metric}: a rule chooses on validation (a val/ metric); the "
                "test split decides verdicts only"
            )
        return self


class Stage(Declared):
    """A stage that runs designed cases (``kind: designed``), and for ``kind: select`` then
    chooses one value by a rule on validation (e.g. a family's learning rate at a new budget)
    for a later stage to use; or (``kind: rule``) the cases a rule chooses from earlier
    stages' records, applied by the queue once they exist (`gridlstm.analysis.studies`)."""

    name: str
    kind: Literal["designed", "select", "rule"]
    declared: Day = ""
    records: str
    base: Texts = ()
    cases: Annotated[tuple[dict[str, Any], ...], Field(min_length=1)] = ()
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}  # a job a combination
    choose: Choose | None = None
    rule: dict[str, Any] | None = None
    frontier: Any = None
    needs: dict[str, Any] | None = None
    launcher: dict[str, Any] | None = None
    dry_run: Texts = ()  # added by dry_run=true to the study's (or DRY_RUN)

    @property
    def queue(self) -> dict[str, Any]:
        """The queue's own keys as declared (rule, frontier, needs, launcher)."""
        return {k: getattr(self, k) for k in QUEUE_KEYS if k in self.model_fields_set}

    @model_validator(mode="after")
    def _kind(self) -> Stage:
        given = self.model_fields_set
        needed = {"select": ("declared", "cases", "choose"), "rule": ("rule",)}
        if missing := [k for k in needed.get(self.kind, ()) if k not in given]:
            raise ValueError(f"missing {missing[0]}: (a {self.kind} stage has one)")
        if self.kind == "rule" and "cases" in given:
            raise ValueError("a rule stage's cases come from its rule: no cases:")
        if self.kind != "rule" and "rule" in given:
            raise ValueError("rule: only a rule stage (kind: rule) has one")
        if self.kind != "rule" and not (self.cases or self.grid):
            raise ValueError("cases: or grid: (the jobs it runs)")
        if self.kind != "select" and "choose" in given:
            raise ValueError("choose: only a select stage chooses a value (kind: select)")
        return self


AnyStage = Annotated[Stage | Confirmatory, Field(discriminator="kind")]


class Study(Declared):
    """A claims study as declared; its folder is set by `gridlstm.analysis.declaration`."""

    claim: Claim
    source: Literal["paper", "secondary", "ours"]
    locator: str = ""  # a secondary source's URL or owner/repository
    page: str = ""
    statement: Prose
    protocol: Prose
    question: Prose
    cannot_say: Prose
    setup: Prose = ""
    verdict: Verdict
    confirmatory: Confirmatory | None = None
    stages: tuple[AnyStage, ...] = ()
    tables: dict[str, Any] = {}  # record_tables.TableSpec by name, once read
    reports: dict[str, dict[str, Any]] = {}  # gridlstm.analysis.reports
    quoted: dict[str, StrictInt | StrictFloat] = {}  # numbers the page quotes (ties)
    superseded_by: str = ""  # the study whose row answers this one's question since
    axes: dict[str, Squashed] = {}  # a confirmatory stage: what it holds equal
    dry_run: Texts = ()  # its stages' dry-run sizes, in place of DRY_RUN
    _folder: Path = PrivateAttr(default=Path())

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def name(self) -> str:
        return self._folder.name

    @property
    def prose(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in PROSE}

    @model_validator(mode="after")
    def _whole(self) -> Study:
        if self.source == "secondary" and not self.locator:
            raise ValueError("source: secondary needs locator: (a URL or owner/repository)")
        for key in ("name", "records"):
            values = [getattr(stage, key) for stage in self.stages]
            if twice := sorted({v for v in values if values.count(v) > 1}):
                raise ValueError(f"stages: two stages share {key} {twice[0]!r}")
        if self.confirmatory and self.confirmatory.name in {s.name for s in self.stages}:
            raise ValueError("confirmatory and stages: two stages share a name")
        names = [s.name for s in confirmatory_stages(self)]
        if unknown := sorted(set(self.axes) - set(names)):
            valid = ", ".join(names) or "none declared"
            raise ValueError(f"axes: {unknown[0]} is no confirmatory stage; valid: {valid}")
        return self


def confirmatory_stages(study: Study) -> list[Confirmatory]:
    """The study's confirmatory stages: its ``confirmatory:`` block, then those declared
    under ``stages:`` (kind: confirmatory), in file order."""
    first = [study.confirmatory] if study.confirmatory else []
    return first + [s for s in study.stages if isinstance(s, Confirmatory)]


def run_stages(study: Study) -> list[Stage]:
    """The study's designed, select and rule stages, in file order."""
    return [s for s in study.stages if isinstance(s, Stage)]


def select_stages(study: Study) -> list[Stage]:
    """The stages whose rule chooses a value a later stage reads (``chosen_by``)."""
    return [s for s in run_stages(study) if s.kind == "select"]


# a pydantic error type -> the form a value must have, in YAML's words
FORMS = {
    "dict_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "model_type": "a mapping",
}


def explain(error: ValidationError, within: str = "") -> str:
    """The first problem of a declaration as one line: where (``stages[2].choose.metric``),
    then what is wrong and what is valid; ``within``: the key the validated part is under."""
    first = error.errors(include_url=False)[0]
    parts: list[str] = [within] if within else []
    for i, part in enumerate(first["loc"]):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif not (i and isinstance(first["loc"][i - 1], int) and part in STAGE_KINDS):
            parts.append(f".{part}" if parts else str(part))  # (a union's tag: not a key)
    where = "".join(parts)
    kind, ctx, given = first["type"], first.get("ctx") or {}, repr(first.get("input"))[:60]
    if kind == "missing":
        parent, _, key = where.rpartition(".")
        return f"{parent}: missing {key}:" if parent else f"missing {key}:"
    if kind == "union_tag_invalid":
        where, given = f"{where}.kind", repr(ctx["tag"])
    if kind in ("literal_error", "union_tag_invalid"):
        choices = (ctx.get("expected") or ctx["expected_tags"]).replace("'", "")
        return f"{where}={given}: choose one of {choices.replace(' or ', ', ')}"
    if kind == "union_tag_not_found":
        return f"{where}: missing kind: (one of {', '.join(STAGE_KINDS)})"
    if kind == "too_short":
        return f"{where}: empty; at least {ctx['min_length']} needed"
    if kind in ("greater_than", "greater_than_equal"):
        bound = f"more than {ctx['gt']}" if "gt" in ctx else f"at least {ctx['ge']}"
        return f"{where}: {bound}, not {given}"
    if kind in FORMS:
        return f"{where}: {FORMS[kind]}, not {given}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message

"""What a study page's answer and its claims summary row say: the verdict's cells, test, p
and word, with what else differs between the cells and which way a result leans.

Why a module of its own: these sentences are the evidence a reader takes away, so their
wording rules (a word limit, the lean of a "not shown", a superseded row, the sizes that
differ beyond the compared factor) live in one place, apart from the machinery that finds
and checks generated parts (`gridlstm.analysis.pages`).
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from gridlstm.analysis import confirmatory, declared, evidence, survival
from gridlstm.analysis.markdown import pipe_table
from gridlstm.run.errors import ConfigError

ROW_WORDS = 60
ANSWER_WORDS = 150
BEYOND = 1.5  # a size that differs more than this between a row's cells is named in it
SOURCE_TAG = {"paper": "[paper]", "secondary": "[secondary]", "ours": "[ours]"}
METRIC_WORDS = {"val/samples_to_threshold": "samples to solve"}


def value(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.4f}"


def p_text(p: float) -> str:
    return "-" if math.isnan(p) else f"{p:.3g}"


def cell_text(cell: evidence.Cell) -> str:
    """A cell as a row shows it: mean +- sd (n), or for a time to a threshold with runs
    that never reached it, how many did and the Kaplan-Meier median."""
    if cell.reached is not None:
        times, reached = cell.times()
        found = survival.median(times, reached)
        median = "" if math.isinf(found) else f", median {found:,.0f}"  # inf: under half solved
        return f"{cell.label}: {sum(reached)} of {cell.n} solved{median}"
    sd = "" if cell.n < 2 else f" +- {value(cell.sd)}"
    return f"{cell.label}: {value(cell.mean)}{sd} (n={cell.n})"


def ratio_text(ratio: float) -> str:
    return "not recorded" if math.isnan(ratio) else f"{ratio:.2f}x"


def link(folder: Path, page: Path) -> str:
    """A study's page (the README.md in ``folder``) as a link from ``page``."""
    return Path(os.path.relpath(folder / "README.md", page.parent)).as_posix()


def _declared(stage: Any, test: bool = True) -> str:
    """A confirmatory stage's declaration in brief (its test left out where the answer beside
    it already names it)."""
    seeds = f"seeds {min(stage.seeds)}-{max(stage.seeds)}"
    named = f"{declared.SHORT_TESTS[stage.test]}, " if test else ""
    said = f"Confirmatory stage `{stage.name}` declared {stage.declared}"
    return f"{said} ({named}alpha {stage.alpha:g}, {seeds})"


def _confirmatory_line(study: declared.Study, done: evidence.Outcome | None) -> str:
    stages = confirmatory.confirmatory_stages(study)
    if not stages:
        return "Exploratory: no confirmatory stage (its test and fresh seeds fixed first) yet."
    first, *later = stages
    if done is None:
        line = f"Exploratory. {_declared(first)}: not yet complete."
    else:
        line = f"{_declared(first, test=False)}: its word is the answer; the rest is exploratory."
    pending = [s for s in later if confirmatory.confirmatory_outcome(study, s) is None]
    more = (f"`{s.name}` ({declared.SHORT_TESTS[s.test]}): pending." for s in pending)
    return " ".join([line, *more])


def shown_prose(study: declared.Study, done: evidence.Outcome | None) -> dict[str, str]:
    """The study's prose, with its confirmatory stage's own (question, protocol, setup, ...)
    in place once that stage's outcome is the answer."""
    return {**study.prose, **(study.confirmatory.prose if done and study.confirmatory else {})}


def completed(study: declared.Study) -> list[tuple[Any, evidence.Outcome]]:
    """Each confirmatory stage that has completed, with its outcome, in declaration order."""
    stages = confirmatory.confirmatory_stages(study)
    found = [(s, confirmatory.confirmatory_outcome(study, s)) for s in stages]
    return [(stage, outcome) for stage, outcome in found if outcome is not None]


def axis(study: declared.Study, stage: Any) -> str:
    """What a confirmatory stage holds equal (the study's ``axes:``), else its name."""
    return study.axes.get(stage.name, f"stage {stage.name}")


def axis_sentence(study: declared.Study, stage: Any, shown: evidence.Outcome) -> str:
    """One confirmatory stage's answer on its axis: cells, test, p and word."""
    metric = METRIC_WORDS.get(shown.metric, shown.metric)
    lean = lean_by(stage, shown)
    return (
        f"At {axis(study, stage)}, {metric}: {cell_text(shown.a)}; {cell_text(shown.b)}; "
        f"{declared.TESTS[shown.test]}, p = {p_text(shown.p)}: "
        f"**{shown.word}**{lean}{' (within chance)' if lean else ''}."
    )


def declared_before(stages: list[Any]) -> str:
    """How sure an answer of several confirmatory words is: each stage's declaration date,
    and the alpha once where the stages share it."""
    alphas = {stage.alpha for stage in stages}
    each = len(alphas) > 1
    names = "; ".join(
        f"`{s.name}` {s.declared}" + (f", alpha {s.alpha:g}" if each else "") for s in stages
    )
    alpha = "" if each else f"alpha {alphas.pop():g}, "
    return (
        f"Each bold verdict is confirmatory, fixed before its runs ({names}; {alpha}"
        "two-sided); everything else is exploratory."
    )


def opening(study: declared.Study, prose: dict[str, str], said: str, sure: str) -> list[str]:
    """A page's opening around its answer (``said``) and how sure it is (``sure``)."""
    return [
        f"**Question.** {prose['question']}",
        "",
        f"**Protocol.** {prose['protocol']} Claim {SOURCE_TAG[study.source]}: "
        f"{study.prose['statement']}.",
        "",
        said,
        "",
        f"**How sure.** {sure}",
        "",
        f"**What it cannot say.** {prose['cannot_say']}",
    ]


def answer(study: declared.Study) -> list[str]:
    """A study page's opening, at most `ANSWER_WORDS` words: with two or more completed
    confirmatory stages, one answer a stage, each on its axis, under the study's question."""
    fix = "question, protocol, statement or cannot_say"
    found = evidence.outcome(study)  # the verdict's cells checked, whichever is shown
    if len(done := completed(study)) > 1:
        said = " ".join(axis_sentence(study, stage, shown) for stage, shown in done)
        sure = declared_before([stage for stage, _ in done])
        lines = opening(study, study.prose, f"**Answer (confirmatory).** {said}", sure)
        return within(study, lines, ANSWER_WORDS, "the page's answer", fix)
    confirmed = confirmatory.confirmatory_outcome(study)
    shown = confirmed or found
    prose = shown_prose(study, confirmed)
    said = (
        f"**Answer ({shown.scope}).** {cell_text(shown.a)} against {cell_text(shown.b)}, "
        f"{shown.metric}; {declared.TESTS[shown.test]}, two-sided, p = {p_text(shown.p)}; "
        f"multiply-adds per run A/B {ratio_text(shown.ratio)}: **{shown.word}**"
        f"{lean(study, shown, confirmed)}. "
        f"Cells chosen on {prose.get('chosen_on', study.verdict.chosen_on)}."
    )
    lines = opening(study, prose, said, _confirmatory_line(study, confirmed))
    return within(study, lines, ANSWER_WORDS, "the page's answer", fix)


def rows_by_axis(study: declared.Study, page: Path) -> list[list[str]]:
    """A study's summary rows: one a completed confirmatory stage where two or more have
    completed (each saying its axis), else the one row of `summary_row`."""
    done = completed(study)
    if len(done) < 2:
        return [summary_row(study, page)]
    evidence.outcome(study)  # the verdict's cells checked, though another answer is shown
    rows = []
    for stage, shown in done:
        setup = stage.prose.get("setup") or study.prose.get("setup") or study.prose["protocol"]
        word = f"**{shown.word}**{lean_by(stage, shown)} (confirmatory, at {axis(study, stage)})"
        rows.append(row(study, page, f"at {axis(study, stage)}: {setup}", shown, word))
    return rows


def row(
    study: declared.Study, page: Path, setup: str, shown: evidence.Outcome, word: str
) -> list[str]:
    """A summary row: the claim, its setup, the cells, p, what else differs, the word."""
    cells = f"{cell_text(shown.a)} vs {cell_text(shown.b)}"
    found = [
        f"{study.prose['statement']} {SOURCE_TAG[study.source]}",
        setup,
        f"{METRIC_WORDS.get(shown.metric, shown.metric)}: {cells}",
        f"{p_text(shown.p)} ({declared.SHORT_TESTS[shown.test]})",
        also_differs(shown.a, shown.b),
        word,
        f"[{study.name}]({link(study.folder, page)})",
    ]
    return within(study, found, ROW_WORDS, "its summary row", "statement or setup")


def summary_row(study: declared.Study, page: Path) -> list[str]:
    found = evidence.outcome(study)  # its cells checked, whichever is shown
    done = confirmatory.confirmatory_outcome(study)
    shown = done or found
    scope = shown.scope
    if study.confirmatory and done is None:
        scope += "; confirmatory declared, not run"
    for stage in confirmatory.confirmatory_stages(study)[1:]:
        if confirmatory.confirmatory_outcome(study, stage) is None:
            scope += f"; `{stage.name}` declared, not run"
    if study.superseded_by:
        later = link(study.folder.parent / study.superseded_by, page)
        scope += f"; superseded by [{study.superseded_by}]({later})"
    prose = shown_prose(study, done)
    word = f"**{shown.word}**{lean(study, shown, done)} ({scope})"
    return row(study, page, prose.get("setup") or prose["protocol"], shown, word)


def lean(study: declared.Study, shown: evidence.Outcome, done: evidence.Outcome | None) -> str:
    """Which cell a result within the spread leans to, by what its test compares
    (`evidence.ahead`); empty for any other word."""
    return lean_by(study.confirmatory if done and study.confirmatory else study.verdict, shown)


def lean_by(rule: Any, shown: evidence.Outcome) -> str:
    """`lean` under ``rule`` (a verdict or a confirmatory stage: its words and mode)."""
    if shown.word != rule.words["within"] or math.isnan(shown.p):
        return ""
    side = evidence.ahead(shown.a, shown.b, shown.test, rule.mode)
    if side == 0:
        return ", neither ahead"
    return f", leans to {(shown.a if side > 0 else shown.b).label}"


def also_differs(a: evidence.Cell, b: evidence.Cell) -> str:
    """What differs between the cells beyond the compared factor by more than `BEYOND`
    (parameters, samples seen, multiply-adds per run; mean A over mean B)."""
    found = []
    sizes = (("parameters", a.params, b.params), ("samples", a.samples, b.samples))
    for name, first, second in (*sizes, ("multiply-adds", a.compute, b.compute)):
        if not (first and second):
            found.append(f"{name} unrecorded")
            continue
        ratio = statistics.fmean(first) / statistics.fmean(second)
        if max(ratio, 1 / ratio) > BEYOND:
            found.append(f"{name} {ratio:.2f}x")
    return "; ".join(found) or f"nothing over {BEYOND:g}x"


def within(study: declared.Study, parts: list[str], limit: int, what: str, fix: str) -> list[str]:
    """``parts`` if their words fit ``limit``; else one line naming the declaration's fix."""
    words = len(" ".join(parts).split())
    if words > limit:
        raise ConfigError(
            f"{study.folder / declared.DECLARATION}: {what} is {words} words (at most {limit}); "
            f"shorten {fix}"
        )
    return parts


def summary(studies: list[declared.Study], page: Path) -> list[str]:
    head = ["claim", "setup", "the two cells (mean +- sd, n)", "p (test)", "also differs, A/B"]
    rows = (row for study in studies for row in rows_by_axis(study, page))
    return pipe_table([*head, "verdict", "page"], rows)

"""Secondary arms of a confirmatory stage: one of its arms with one knob changed, run on the
same seeds and held-out problems after it, each compared with the arm it changes by the
stage's own test. Reported, never deciding: the confirmatory verdict stays what its declared
test gave, so this file holds p and no verdict word.

    python -m gridlstm.tables report=secondary_arms

writes ``secondary_arms.md`` beside the confirmatory stage's folder (its records are
``<folder>/<stage>/<tag>``) once an arm has records.
Why a report and not a declaration: an arm is declared as a stage of the
study's study.yaml with its reporting rule before its runs; the study's
declaration holds the one comparison whose word is the answer.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlstm.analysis import declaration
from gridlstm.analysis.confirmatory import Confirmatory, arm_overrides
from gridlstm.analysis.evidence import (
    DECLARATION,
    TESTS,
    Cell,
    CellSpec,
    NoRuns,
    Study,
    gather,
    p_value,
)
from gridlstm.analysis.markdown import pipe_table


@dataclass(frozen=True)
class Arm:
    """A secondary arm: the confirmatory arm it changes, the change, where its records are."""

    label: str
    changes: str  # "a" or "b"
    knob: dict[str, Any]  # the overrides that differ from that arm's
    records: str  # beside study.yaml
    queue: str  # its stage in study.yaml, where its rule is declared


ARMS: dict[str, tuple[Arm, ...]] = {
    "paper_regime": (
        Arm(
            "A with depth priority",
            "a",
            {"grid2d_priority": "depth"},
            "equal_compute2/depth_priority/cpu",
            "depth_priority",
        ),
        Arm(
            "untied 2-LSTM, depth 4",
            "a",
            {"model": "grid2d_untied"},
            "equal_compute2/untied/cpu",
            "untied",
        ),
    ),
}


def base_settings(stage: Confirmatory) -> dict[str, str]:
    """The stage's base overrides that set a value (key=value; not ~removals or +additions)."""
    return dict(o.split("=", 1) for o in stage.base if "=" in o and o[0] not in "~+")


def _seeds(cell: Cell | None) -> set[int]:
    return {int(float(s)) for s in cell.values} if cell else set()


def _median(cell: Cell) -> str:
    return f"{statistics.median(cell.values.values()):.3f}"


def _cell(study: Study, label: str, where: dict[str, Any], records: str) -> Cell | None:
    """The completed runs of ``where`` in ``records``; None where none has completed."""
    if not (study.folder / records).is_dir():
        return None
    try:
        return gather(study, CellSpec(label, where, (records,)), study.confirmatory.metric)
    except NoRuns:
        return None


def render(folder: Path, arms: tuple[Arm, ...]) -> str:
    """The comparison table of each arm against the arm it changes."""
    study = declaration.load(folder / DECLARATION)
    stage = study.confirmatory
    assert stage is not None, f"{folder}: secondary arms need a confirmatory stage"
    # the stage's base settings too: a run on other test problems or sizes is not this arm
    base = base_settings(stage)
    seeds = set(stage.seeds)
    rows = []
    for arm in arms:
        given = arm_overrides(study, arm.changes)
        assert given is not None, f"{folder}: arm {arm.changes} waits on a stage's choice"
        label = getattr(stage, arm.changes)["label"]
        against = _cell(study, label, {**base, **given}, stage.records)
        own = _cell(study, arm.label, {**base, **given, **arm.knob}, arm.records)
        ran, full = _seeds(own), _seeds(against)
        row: list[Any] = [arm.label, label, len(ran)]
        if own is None or against is None or ran != seeds or full != seeds:
            state = "seeds other than the stage's" if ran - seeds else f"{len(ran)} of {len(seeds)}"
            rows.append(row + ["-"] * 5 + [state, f"`{arm.queue}`"])
            continue
        p = p_value(stage.test, own, against)
        row += [_median(own), _median(against), f"{own.mean:.4f}", f"{against.mean:.4f}"]
        rows.append(row + [f"{p:.3g}", "complete", f"`{arm.queue}`"])
    head = ["arm", "against", "n", "median", "median against", "mean", "mean against", "p"]
    head += ["seeds run", "declared in study.yaml as stage"]
    lines = [
        f"# Secondary arms of the confirmatory stage `{stage.name}`",
        "",
        f"Each arm against the arm it changes on {stage.metric}, over the stage's seeds "
        f"({min(seeds)} to {max(seeds)}) and base settings, by the stage's own test "
        f"({TESTS[stage.test]}, two-sided, unpaired); reported, not deciding: no verdict "
        "word. An arm not yet run on every seed shows how many have run and nothing else.",
        "",
        *pipe_table(head, rows),
    ]
    return "\n".join(lines) + "\n"


def outputs(claims: Path) -> dict[Path, str]:
    """``secondary_arms.md`` beside each study's confirmatory records, once an arm has run."""
    found = {}
    for name, arms in ARMS.items():
        folder = claims / name
        if not any((folder / arm.records).is_dir() for arm in arms):
            continue  # no arm has run: no file
        study = declaration.load(folder / DECLARATION)
        assert study.confirmatory is not None
        beside = (folder / study.confirmatory.records).parent.parent  # past <stage>/<tag>
        found[beside / "secondary_arms.md"] = render(folder, arms)
    return found

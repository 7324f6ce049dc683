"""Secondary arms of a confirmatory stage: one of its arms with one knob changed, run on the
same seeds and held-out problems after it, each compared with the arm it changes by the
stage's own test. Reported, never deciding: the confirmatory verdict stays what its declared
test gave, so this file holds p and no verdict word.

    python -m gridlstm.tables report=secondary_arms

writes ``secondary_arms.md`` beside the confirmatory stage's folder (its records are
``<folder>/<stage>/<tag>``) once an arm has records.
Why a report and not a declaration: an arm is declared in the queue's file
(scripts/cpu_studies.yaml) with its reporting rule before its runs; the study's
declaration holds the one comparison whose word is the answer.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlstm.analysis import declaration
from gridlstm.analysis.confirmatory import arm_overrides
from gridlstm.analysis.evidence import DECLARATION, TESTS, Cell, CellSpec, gather, p_value
from gridlstm.analysis.markdown import pipe_table


@dataclass(frozen=True)
class Arm:
    """A secondary arm: the confirmatory arm it changes, the change, where its records are."""

    label: str
    changes: str  # "a" or "b"
    knob: dict[str, Any]  # the overrides that differ from that arm's
    records: str  # beside study.yaml
    queue: str  # its study in scripts/cpu_studies.yaml, where its rule is declared


ARMS: dict[str, tuple[Arm, ...]] = {
    "paper_regime": (
        Arm(
            "A with depth priority",
            "a",
            {"grid2d_priority": "depth"},
            "equal_compute2/depth_priority/cpu",
            "paper_regime_depth_priority",
        ),
        Arm(
            "untied 2-LSTM, depth 4",
            "a",
            {"model": "grid2d_untied"},
            "equal_compute2/untied/cpu",
            "paper_regime_untied",
        ),
    ),
}


def _median(cell: Cell) -> str:
    return f"{statistics.median(cell.values.values()):.3f}"


def render(folder: Path, arms: tuple[Arm, ...]) -> str:
    """The comparison table of each arm that has records against the arm it changes."""
    study = declaration.load(folder / DECLARATION)
    stage = study.confirmatory
    assert stage is not None, f"{folder}: secondary arms need a confirmatory stage"
    rows = []
    for arm in arms:
        if not (folder / arm.records).is_dir():
            continue
        base = arm_overrides(study, arm.changes)
        assert base is not None, f"{folder}: arm {arm.changes} waits on a stage's choice"
        label = getattr(stage, arm.changes)["label"]
        against = gather(study, CellSpec(label, base, (stage.records,)), stage.metric)
        own = gather(study, CellSpec(arm.label, {**base, **arm.knob}, (arm.records,)), stage.metric)
        row = [arm.label, label, own.n, against.n]
        if set(map(int, own.values)) != set(stage.seeds):  # not yet run on every seed
            row += ["-"] * 5
        else:
            p = p_value(stage.test, own, against)
            row += [_median(own), _median(against), f"{own.mean:.4f}", f"{against.mean:.4f}"]
            row += [f"{p:.3g}"]
        rows.append(row + [f"`{arm.queue}`"])
    head = ["arm", "against", "n", "n against", "median", "median against", "mean"]
    head += ["mean against", "p", "declared in scripts/cpu_studies.yaml"]
    lines = [
        f"# Secondary arms of the confirmatory stage `{stage.name}`",
        "",
        f"Each arm against the arm it changes on {stage.metric}, by the stage's own test "
        f"({TESTS[stage.test]}, two-sided); reported, not deciding: no verdict word. An arm "
        "not yet run on every seed of the stage shows its count and nothing else.",
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
            continue
        study = declaration.load(folder / DECLARATION)
        assert study.confirmatory is not None
        beside = (folder / study.confirmatory.records).parent.parent  # past <stage>/<tag>
        found[beside / "secondary_arms.md"] = render(folder, arms)
    return found

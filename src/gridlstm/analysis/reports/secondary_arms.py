"""Secondary arms of a confirmatory stage: one of its arms with one knob changed, run on the
same seeds and held-out problems after it, each compared with the arm it changes by the
stage's own test. Reported, never deciding: the confirmatory verdict stays what its declared
test gave, so this file holds p and no verdict word. Declared as a report (kind
``secondary_arms``): ``stage`` (default: the ``confirmatory:`` block) and ``file``; the arms
are the stage's own ``secondary:`` and any ``arms:`` of the report (an arm declared as a stage
of its own, after a block whose design cannot change), each with ``label``, ``changes`` (a or
b), ``knob`` ({key: value}), ``records`` and ``stage`` (its stage in study.yaml, where its jobs
are declared; not the confirmatory ``stage`` the report reads).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlstm.analysis import survival
from gridlstm.analysis.confirmatory import Confirmatory, arm_overrides, as_override
from gridlstm.analysis.declared import TESTS, CellSpec, Study, confirmatory_stages
from gridlstm.analysis.evidence import Cell, NoRuns, gather, p_value
from gridlstm.analysis.markdown import pipe_table


@dataclass(frozen=True)
class Arm:
    """A secondary arm: the confirmatory arm it changes, the change, where its records are."""

    label: str
    changes: str  # "a" or "b"
    knob: dict[str, Any]  # the overrides that differ from that arm's
    records: str  # beside study.yaml
    queue: str  # its stage in study.yaml, where its rule is declared

    @classmethod
    def declared(cls, given: dict[str, Any]) -> Arm:
        """A report's arm (`ARM_KEYS`), as read from study.yaml."""
        if not isinstance(given, dict) or set(given) != ARM_KEYS:
            raise ValueError(f"an arm has exactly {', '.join(sorted(ARM_KEYS))}: {given!r}")
        return cls(*(given[k] for k in ("label", "changes", "knob", "records", "stage")))


REQUIRED = {"file"}
OPTIONAL = {"stage", "arms"}
ARM_KEYS = {"label", "changes", "knob", "records", "stage"}


def check(entry: dict[str, Any]) -> None:
    """Each of the report's ``arms:`` read as an `Arm` (a ValueError says what is wrong)."""
    for given in entry.get("arms", []):
        arm = Arm.declared(given)
        if arm.changes not in ("a", "b") or not isinstance(arm.knob, dict) or not arm.knob:
            raise ValueError(f"arms: {arm.label!r} changes a or b by a knob {{key: value}}")


def base_settings(stage: Confirmatory) -> dict[str, str]:
    """The stage's base overrides that set a value (key=value; not ~removals or +additions)."""
    return dict(o.split("=", 1) for o in stage.base if "=" in o and o[0] not in "~+")


def _seeds(cell: Cell | None) -> set[int]:
    return {int(float(s)) for s in cell.values} if cell else set()


def _median(cell: Cell) -> str:
    """The median; a time-to-threshold cell's Kaplan-Meier median (censored runs counted)."""
    if cell.reached is None:
        return f"{statistics.median(cell.values.values()):.3f}"
    found = survival.median(*cell.times())
    return "not reached" if math.isinf(found) else f"{found:,.0f}"


def _mean(cell: Cell) -> str:
    """The mean; a time-to-threshold cell's share of runs that reached the threshold."""
    if cell.reached is None:
        return f"{cell.mean:.4f}"
    return f"{sum(cell.reached.values())}/{cell.n} reached"


def _cell(study: Study, stage: Confirmatory, label: str, where: dict, records: str) -> Cell | None:
    """The completed runs of ``where`` in ``records``; None where none has completed."""
    if not (study.folder / records).is_dir():
        return None
    try:
        return gather(
            study,
            CellSpec(label=label, where=where, records=(records,)),
            stage.metric,
            stage.censored_at,
        )
    except NoRuns:
        return None


def stage_of(study: Study, name: str = "") -> Confirmatory:
    """The confirmatory stage ``name`` (default: the ``confirmatory:`` block)."""
    for stage in confirmatory_stages(study):
        if stage.name == name or (not name and stage is study.confirmatory):
            return stage
    valid = ", ".join(s.name for s in confirmatory_stages(study)) or "none declared"
    raise ValueError(f"{study.name}: no confirmatory stage {name!r}; valid: {valid}")


def arms_of(stage: Confirmatory, entry: dict[str, Any]) -> tuple[Arm, ...]:
    """The stage's own ``secondary:`` arms (each queued as the stage its records name), then
    the report's ``arms:``."""
    own = tuple(
        Arm(a.label, a.changes, a.knob, a.records, Path(a.records).parent.name)
        for a in stage.secondary
    )
    return own + tuple(Arm.declared(given) for given in entry.get("arms", []))


def render(study: Study, stage: Confirmatory, arms: tuple[Arm, ...]) -> str:
    """The comparison table of each arm against the arm it changes."""
    # the stage's base settings too: a run on other test problems or sizes is not this arm
    base = base_settings(stage)
    seeds = set(stage.seeds)
    rows = []
    for arm in arms:
        given = arm_overrides(study, arm.changes, stage)
        assert given is not None, f"{study.name}: arm {arm.changes} waits on a stage's choice"
        label = getattr(stage, arm.changes).label
        against = _cell(study, stage, label, {**base, **given}, stage.records)
        knob = {k: as_override(v) for k, v in arm.knob.items()}  # null as the job ran it
        own = _cell(study, stage, arm.label, {**base, **given, **knob}, arm.records)
        ran, full = _seeds(own), _seeds(against)
        row: list[Any] = [arm.label, label, len(ran)]
        if own is None or against is None or ran != seeds or full != seeds:
            state = "seeds other than the stage's" if ran - seeds else f"{len(ran)} of {len(seeds)}"
            rows.append(row + ["-"] * 5 + [state, f"`{arm.queue}`"])
            continue
        p = p_value(stage.test, own, against)
        row += [_median(own), _median(against), _mean(own), _mean(against)]
        rows.append(row + [f"{p:.3g}", "complete", f"`{arm.queue}`"])
    share = stage.censored_at != ""
    head = ["arm", "against", "n", "median", "median against"]
    head += ["reached", "reached against"] if share else ["mean", "mean against"]
    head += ["p", "seeds run", "declared in study.yaml as stage"]
    censored = (
        f" A run that never reached it counts as censored at its {stage.censored_at}; the "
        "median is the Kaplan-Meier median."
        if share
        else ""
    )
    lines = [
        f"# Secondary arms of the confirmatory stage `{stage.name}`",
        "",
        f"Each arm against the arm it changes on {stage.metric}, over the stage's seeds "
        f"({min(seeds)} to {max(seeds)}) and base settings, by the stage's own test "
        f"({TESTS[stage.test]}, two-sided, unpaired); reported, not deciding: no verdict "
        "word. An arm not yet run on every seed shows how many have run and nothing else."
        + censored,
        "",
        *pipe_table(head, rows),
    ]
    return "\n".join(lines) + "\n"


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """The report's file, once one of its arms has run."""
    stage = stage_of(study, entry.get("stage", ""))
    arms = arms_of(stage, entry)
    if not any((study.folder / arm.records).is_dir() for arm in arms):
        return {}  # no arm has run: no file
    return {study.folder / entry["file"]: render(study, stage, arms)}

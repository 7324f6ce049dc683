"""A stage's cases chosen by a rule the queue runs, not pasted by a person.

A stage of a study.yaml (``kind: rule``) names a ``rule`` instead of ``cases``::

    - name: frontier
      kind: rule
      records: frontier/cpu
      rule: {kind: choice, reads: [cpu, edge/cpu], groups: [model]}

``reads`` are results folders of the study's earlier stages (under the study's folder, as
its ``records:`` are). The first queue run whose inputs are all there applies the rule
and records what it chose in the stage's results folder (``chosen.json``: the rule, its
version, what it read and the cases); every later run reads that record, so a choice made
once is never silently remade on more records. A rule is committed before its inputs exist
(its study.yaml is), and the test per rule kind (tests/test_claims_files.py) applies each
recorded rule to the committed records again.

The kinds wrap the frontier and stage rules of `gridlstm.analysis.stages`, `.frontier` and
`.lr_check`. A rule reads validation unless its ``metric`` says otherwise; the stages that
chose on test accuracy before 2026-11-27 say ``metric: test/acc`` in their rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gridlstm.analysis import frontier, lr_check, stages
from gridlstm.analysis.job_records import read_jobs
from gridlstm.run.clock import stamp
from gridlstm.run.errors import ConfigError

VERSION = 1
RECORD = "chosen.json"
FRONTIER_KEYS = ("family", "size", "key", "metric")
KINDS: dict[str, set[str]] = {
    "choice": {"groups"},
    "edge": {"groups"},
    "frontier_seeds": set(FRONTIER_KEYS),
    "fill": {"settings", *FRONTIER_KEYS},
    "decide": {"against", "seeds", *FRONTIER_KEYS},
    "learning_rate": {"rates", *FRONTIER_KEYS},
    "learning_rate_frontier": {"settings", *FRONTIER_KEYS},
}
COMMON = {"kind", "reads", "drop", "match"}
MATCHES = ("exact", "subset")  # subset: reads that completed after the choice name more


def check(path: Path, name: str, rule: Any, claims: set[str]) -> None:
    """One `ConfigError` for a rule of an unknown kind, an unknown option, or one that reads
    a stage the file does not declare."""
    if not isinstance(rule, dict) or rule.get("kind") not in KINDS:
        kind = rule.get("kind") if isinstance(rule, dict) else rule
        raise ConfigError(
            f"{path}: study {name!r}: rule kind {kind!r} is unknown; valid: {', '.join(KINDS)}"
        )
    allowed = KINDS[rule["kind"]] | COMMON
    unknown = sorted(set(rule) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: study {name!r}: rule option {unknown[0]!r} is not one of "
            f"{rule['kind']}'s: {', '.join(sorted(allowed))}"
        )
    if "key" in allowed and not rule.get("key"):
        raise ConfigError(
            f"{path}: study {name!r}: a {rule['kind']} rule needs key: the setting its "
            "frontier runs over (e.g. task.datamodule.bits, task.datamodule.digits)"
        )
    reads = rule.get("reads")
    if not isinstance(reads, list) or not reads:
        raise ConfigError(f"{path}: study {name!r}: rule needs reads: [<claim>/<tag>, ...]")
    for read in reads:
        if str(read).rsplit("/", 1)[0] not in claims:
            raise ConfigError(
                f"{path}: study {name!r}: rule reads {read!r}, which no study of the file "
                "declares (reads are <claim>/<tag> of its studies)"
            )
    if rule.get("match", "exact") not in MATCHES:
        raise ConfigError(f"{path}: study {name!r}: rule match: choose one of {', '.join(MATCHES)}")


def apply(rule: dict[str, Any], folders: list[Path]) -> list[dict[str, Any]]:
    """The cases ``rule`` chooses from the records in ``folders``."""
    kind = rule["kind"]
    drop = set(rule.get("drop") or [])
    if kind in ("choice", "edge"):
        rows = [row for folder in folders for row in read_jobs(folder)]
        groups = list(rule["groups"])
        best = stages.choose(rows, groups)
        if kind == "choice":
            cases = stages.as_cases(best, groups)
        else:
            cases = stages.edge_cases(rows, best, groups)
        return [{k: v for k, v in case.items() if k not in drop} for case in cases]
    ladder = frontier.Ladder(**{k: rule[k] for k in FRONTIER_KEYS if k in rule})
    if kind == "frontier_seeds":
        cases = frontier.seed_cases(frontier.frontiers(folders, ladder), ladder)
    elif kind == "fill":
        cases = frontier.missing_seeds(folders, rule["settings"], ladder)
    elif kind == "decide":
        seeds = range(rule["seeds"][0], rule["seeds"][1] + 1)
        cases = frontier.deciding_seeds(folders, rule["against"], seeds, ladder)
    elif kind == "learning_rate":
        found = frontier.frontiers(folders, ladder)
        cases = lr_check.learning_rate_cases(found, rule["rates"], ladder)
    else:
        cases = lr_check.learning_rate_frontier_cases(folders, rule["settings"], ladder)
    return [{k: v for k, v in case.items() if k not in drop} for case in cases]


def record_of(folder: Path) -> dict[str, Any] | None:
    path = folder / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def resolve(
    name: str, study: dict[str, Any], results: Path, out: Path, write: bool
) -> list[dict[str, Any]] | str:
    """The stage's cases: its record's, else the rule applied now (and recorded where
    ``write``); a reason (text) where an input has no records yet."""
    if (found := record_of(out)) is not None:
        return found["cases"]
    rule = study["rule"]
    folders = [results / read for read in rule["reads"]]
    waiting = [str(f) for f in folders if not (f / "jobs").is_dir()]
    if waiting:
        return f"its rule waits for the records of {', '.join(waiting)}"
    cases = apply(rule, folders)
    if not cases:
        return f"its rule ({rule['kind']}) names no job: the stage is not needed"
    if write:
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "study": name,
            "rule": rule["kind"],
            "version": VERSION,
            "reads": list(rule["reads"]),
            "chosen": stamp(),
            "cases": cases,
        }
        (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return cases

"""Reading a claims study's declaration (``docs/claims/<study>/study.yaml``): every part
checked before any work, one `ConfigError` naming the file and the fix.

Why a module of its own: the declaration joins the verdict (`gridlstm.analysis.evidence`)
and the pre-registered stages (`gridlstm.analysis.confirmatory`), which do not import each
other's readers.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gridlstm.analysis.confirmatory import check_confirmatory
from gridlstm.analysis.declared_stages import (
    confirmatory_stages,
    parse_confirmatory,
    parse_stages,
)
from gridlstm.analysis.evidence import (
    CLAIMS,
    CLAIMS_DIR,
    DECIMAL,
    DECLARATION,
    PROSE,
    SOURCES,
    STUDY_KEYS,
    Study,
    check_keys,
    fail,
    one_of,
    parse_verdict,
)
from gridlstm.analysis.job_records import load_yaml
from gridlstm.analysis.record_tables import parse_tables
from gridlstm.analysis.reports import parse_reports


def load(path: Path) -> Study:
    """A study's declaration, checked: one `ConfigError` naming the file and the fix."""
    try:
        raw = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise fail(path, f"not a readable YAML file ({error.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise fail(path, "a mapping with claim, source, statement, protocol, verdict")
    check_keys(path, "study", raw, STUDY_KEYS)
    for key in ("claim", "source", "statement", "protocol", "question", "cannot_say", "verdict"):
        if key not in raw:
            raise fail(path, f"missing {key}:")
    prose = {k: " ".join(str(raw.get(k, "")).split()) for k in PROSE}
    for key, text in prose.items():
        if found := DECIMAL.search(text):
            raise fail(
                path,
                f"{key} holds the number {found.group()}: results come from the records "
                "(the verdict's cells), not from typed text",
            )
    quoted = raw.get("quoted", {})
    if not isinstance(quoted, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in quoted.values()
    ):
        raise fail(path, "quoted: maps a name to a number the page quotes from its source")
    source = one_of(path, "source", raw["source"], SOURCES)
    if source == "secondary" and not raw.get("locator"):
        raise fail(path, "source: secondary needs locator: (a URL or owner/repository)")
    stages = parse_stages(path, raw["stages"]) if "stages" in raw else ()
    if not isinstance(raw.get("dry_run", []), list):
        raise fail(path, "dry_run: a list of overrides, a dry run's sizes for this task")
    planned = frozenset(str(stage.records) for stage in stages)
    study = Study(
        name=path.parent.name,
        folder=path.parent,
        claim=one_of(path, "claim", raw["claim"], CLAIMS),
        source=source,
        locator=str(raw.get("locator", "")),
        prose=prose,
        verdict=parse_verdict(path, raw["verdict"], planned),
        confirmatory=parse_confirmatory(path, raw["confirmatory"])
        if "confirmatory" in raw
        else None,
        stages=stages,
        tables=parse_tables(path, raw["tables"]) if "tables" in raw else {},
        reports=parse_reports(path, raw["reports"]) if "reports" in raw else {},
        superseded_by=str(raw.get("superseded_by", "")),
        axes={str(k): " ".join(str(v).split()) for k, v in (raw.get("axes") or {}).items()},
        dry_run=tuple(str(o) for o in raw.get("dry_run", [])),
    )
    stages = confirmatory_stages(study)
    names = [s.name for s in stages] + [s.name for s in study.stages if s not in stages]
    if len(set(names)) != len(names):
        raise fail(path, "confirmatory and stages: two stages share a name")
    for stage in stages:
        check_confirmatory(path, study, stage)
    if unknown := sorted(set(study.axes) - {s.name for s in stages}):
        valid = ", ".join(s.name for s in stages) or "none declared"
        raise fail(path, f"axes: {unknown[0]} is no confirmatory stage; valid: {valid}")
    return study


def declarations(root: Path = CLAIMS_DIR) -> list[Path]:
    return sorted(root.glob(f"*/{DECLARATION}"))


def load_all(root: Path = CLAIMS_DIR) -> list[Study]:
    """Every declared study, in the summary's order (by claim, then name)."""
    found = [load(path) for path in declarations(root)]
    names = {study.name for study in found}
    for study in found:
        if study.superseded_by and study.superseded_by not in names - {study.name}:
            raise fail(
                study.folder / DECLARATION,
                f"superseded_by: {study.superseded_by!r} is no other declared study; valid: "
                f"{', '.join(sorted(names - {study.name}))}",
            )
    return sorted(found, key=lambda s: (CLAIMS.index(s.claim), s.name))

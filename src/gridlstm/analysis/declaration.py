"""Reading a claims study's declaration (``docs/claims/<study>/study.yaml``): every part
checked before any work, one `ConfigError` naming the file and the fix.

Why a module of its own: the declaration's form is `gridlstm.analysis.declared`'s; what
needs the study's folder (its records, the seeds its earlier stages used, its tables and
reports) is checked here, above the modules that read them.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from gridlstm.analysis.confirmatory import check_confirmatory
from gridlstm.analysis.declared import (
    CLAIMS,
    CLAIMS_DIR,
    DECLARATION,
    Study,
    confirmatory_stages,
    explain,
    fail,
)
from gridlstm.analysis.job_records import load_yaml
from gridlstm.analysis.record_tables import parse_tables
from gridlstm.analysis.reports import parse_reports


def load(path: Path) -> Study:
    """A study's declaration, checked: one `ConfigError` naming the file and the fix."""
    try:
        raw = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError, ValueError) as error:  # ValueError: a date like 2026-13-01
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        why = getattr(error, "problem", None) or error
        raise fail(path, f"not a readable YAML file: {at}{why}") from None
    if not isinstance(raw, dict):
        raise fail(path, "a mapping with claim, source, statement, protocol, verdict")
    try:
        study = Study.model_validate(raw)
    except ValidationError as error:
        raise fail(path, explain(error)) from None
    planned = {stage.records for stage in study.stages}  # a stage's, before it has run
    for arm in ("a", "b"):
        for record in getattr(study.verdict, arm).records:
            folder = path.parent / record
            if record not in planned and not (
                (folder / "jobs").is_dir() or (folder / "table.csv").is_file()
            ):
                raise fail(
                    path,
                    f"verdict.{arm}: records {record!r} holds no jobs/ or table.csv "
                    f"(folders are relative to {path.parent})",
                )
    study = study.model_copy(
        update={
            "tables": parse_tables(path, study.tables) if "tables" in raw else {},
            "reports": parse_reports(path, study.reports) if "reports" in raw else {},
        }
    )
    study._folder = path.parent
    for stage in confirmatory_stages(study):
        check_confirmatory(path, study, stage)
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

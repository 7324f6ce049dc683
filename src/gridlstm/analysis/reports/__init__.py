"""Reports: files a study writes beside its page that its ``tables:`` cannot state as one
table of cells (the verdicts between a declared table's rows; a secondary arm against its
arm). Each is declared in the study's study.yaml under ``reports:`` as one of the kinds
below, with the records it reads and the files it writes; the kinds hold no study's stages,
files or prose (each module's docstring lists its keys):

    reports:
      priority_none:
        kind: verdicts
        file: priority_none/restated_verdicts.md
        needs: [priority_none/cpu/jobs]   # no file until these exist (optional)
        ...                               # the kind's keys: KINDS[kind].REQUIRED, .OPTIONAL

``python -m gridlstm.tables report=<study>|all`` writes them and ``check=true`` compares
them with the committed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridlstm.analysis.declared import Study, fail
from gridlstm.analysis.reports import secondary_arms, table_verdicts

COMMON = {"kind", "needs"}
# Each kind's module: outputs(study, entry) -> {path: text}, its REQUIRED and OPTIONAL keys,
# and optionally check(entry), raising ValueError naming what is wrong.
KINDS: dict[str, Any] = {
    "secondary_arms": secondary_arms,
    "verdicts": table_verdicts,
}


def parse_reports(path: Path, raw: Any) -> dict[str, dict[str, Any]]:
    """A declaration's ``reports:``, each entry's kind and keys checked (one error naming the
    file and the key)."""
    if not isinstance(raw, dict):
        raise fail(path, "reports: a mapping of name -> {kind, ...its keys}")
    found = {}
    for name, given in raw.items():
        where = f"reports.{name}"
        if not isinstance(given, dict) or "kind" not in given:
            raise fail(path, f"{where}: a mapping with kind: ({', '.join(KINDS)})")
        if given["kind"] not in KINDS:
            raise fail(path, f"{where}.kind={given['kind']!r}: choose one of {', '.join(KINDS)}")
        kind = KINDS[given["kind"]]
        allowed = COMMON | kind.REQUIRED | kind.OPTIONAL
        if unknown := sorted(set(given) - allowed):
            raise fail(
                path, f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(allowed))}"
            )
        if missing := sorted(kind.REQUIRED - set(given)):
            raise fail(path, f"{where}: missing {missing[0]}: (a {given['kind']} report needs it)")
        if not isinstance(given.get("needs", []), list):
            raise fail(path, f"{where}.needs: a list of folders under the study's")
        try:
            if check := getattr(kind, "check", None):
                check(given)
        except (ValueError, TypeError, KeyError) as error:
            raise fail(path, f"{where}: {error}") from None
        found[str(name)] = {**given, table_verdicts.NAME: str(name)}  # named in its errors
    return found


def outputs(study: Study) -> dict[Path, str]:
    """Every declared report's files whose records exist, with their text."""
    found: dict[Path, str] = {}
    for entry in study.reports.values():
        if all((study.folder / need).exists() for need in entry.get("needs", [])):
            found |= KINDS[entry["kind"]].outputs(study, entry)
    return found

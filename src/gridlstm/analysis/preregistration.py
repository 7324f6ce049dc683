"""Was a confirmatory stage declared before its first job began? Dated from git history (the
commit that added the stage's name, the block as committed then) against the queue's record of
its first run.

Why a module of its own: the check needs the repository's whole history, which a shallow clone
(`git clone --depth 1`, the default checkout of common CI services) or an export without
`.git` does not have. There it cannot know, and says so (`unverifiable`) instead of reporting a
violation.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from gridlstm.analysis import declaration
from gridlstm.analysis.confirmatory import first_start
from gridlstm.analysis.declared import (
    CLAIMS_DIR,
    DECLARATION,
    DESCRIPTIVE,
    Confirmatory,
    Study,
    confirmatory_stages,
)
from gridlstm.analysis.job_records import load_yaml


def _git(path: Path, *args: str) -> str:
    """A git command's output, run in ``path``'s folder (raises outside git)."""
    done = subprocess.run(["git", *args], cwd=path.parent, capture_output=True, check=True)
    return done.stdout.decode()


def missing_history(path: Path) -> str | None:
    """Why git cannot date the commits of ``path`` here (no git, not a checkout, a shallow
    clone), or None where the whole history is at hand."""
    try:
        shallow = _git(path, "rev-parse", "--is-shallow-repository").strip()
    except (OSError, subprocess.CalledProcessError):
        return "there is no git history here (an export, or git is not installed)"
    if shallow == "true":
        return "this is a shallow clone (`git fetch --unshallow` brings the history)"
    return None


def first_commit_time(path: Path, line: str) -> float | None:
    """When a line matching ``line`` (a regex: anchor it, so that a name is not found inside a
    longer one) first entered ``path`` in git history (unix time), or None outside git."""
    try:
        out = _git(path, "log", "--format=%ct", "-G", line, "--", path.name).split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return float(out[-1]) if out else None


def _started(study: Study, stage: Confirmatory) -> tuple[Path, Any]:
    """A confirmatory stage's records folder and its first queue run's start (None: not run)."""
    folder = study.folder / stage.records
    return folder, first_start(folder)


def unverifiable(study: Study) -> str | None:
    """One line where the study has a confirmatory stage that ran but git cannot date its
    declaration here; None where the check can be made (or there is nothing to check)."""
    ran = [s.name for s in confirmatory_stages(study) if _started(study, s)[1] is not None]
    if not ran:
        return None
    why = missing_history(study.folder / DECLARATION)
    if why is None:
        return None
    names = ", ".join(repr(name) for name in ran)
    return (
        f"{study.folder / DECLARATION}: pre-registration of confirmatory {names} not "
        f"verified: {why}"
    )


def unverified(root: Path) -> list[str]:
    """`unverifiable`'s line for every study under ``root`` that has one."""
    studies = declaration.load_all(root / CLAIMS_DIR)
    return [line for study in studies if (line := unverifiable(study))]


def preregistration_problems(study: Study) -> list[str]:
    """Each confirmatory stage must be committed before its first job started: its queue
    record's start against the commit that added its name to the declaration, and its design
    then against now. Nothing where the history is not at hand (`unverifiable` says so)."""
    return [line for stage in confirmatory_stages(study) for line in _problems(study, stage)]


def _problems(study: Study, stage: Confirmatory) -> list[str]:
    folder, started = _started(study, stage)
    name = stage.name
    if started is None:
        if (folder / "jobs").is_dir() or (folder / "table.csv").is_file():
            return [f"{folder}: records without queue.json, whose start the declaration is held to"]
        return []
    path = study.folder / DECLARATION
    if missing_history(path) is not None:
        return []
    began = started.timestamp()
    committed = first_commit_time(path, f"^[- ]*name: *{name} *$")
    if committed is None:
        return [f"{path}: confirmatory {name!r} is not committed, but its jobs began {started}"]
    if committed > began:
        return [
            f"{path}: confirmatory {name!r} was committed after its first job began "
            f"({started}); declare a new confirmatory stage and run it afresh"
        ]
    declared = block_at(path, began, name)
    current = block_named(load_yaml(path.read_text()), name)
    if declared is not None and _design(declared) != _design(current):
        return [
            f"{path}: confirmatory {name!r} changed after its first job began ({started}); "
            "declare a new confirmatory stage and run it afresh"
        ]
    return []


def _design(block: Any) -> Any:
    """A confirmatory block less its `DESCRIPTIVE` prose: what may not change once it ran."""
    return {k: v for k, v in block.items() if k not in DESCRIPTIVE} if block else block


def block_named(raw: Any, name: str) -> dict[str, Any] | None:
    """The confirmatory block called ``name`` in a declaration's text: its ``confirmatory:``
    block, or a ``stages:`` entry of kind confirmatory."""
    raw = raw if isinstance(raw, dict) else {}
    blocks = [raw.get("confirmatory")] + list(raw.get("stages") or [])
    return next((b for b in blocks if isinstance(b, dict) and b.get("name") == name), None)


def block_at(path: Path, when: float, name: str) -> dict[str, Any] | None:
    """The confirmatory block ``name`` as last committed before ``when`` (None outside git,
    before any commit or before the block was there)."""
    try:
        rev = _git(path, "rev-list", "-1", f"--before={int(when)}", "HEAD", "--", path.name)
        if not rev.strip():
            return None
        prefix = _git(path, "rev-parse", "--show-prefix").strip()
        text = _git(path, "show", f"{rev.strip()}:{prefix}{path.name}")
    except (OSError, subprocess.CalledProcessError):
        return None
    return block_named(load_yaml(text), name)

"""Which code, on which machine, made a page's numbers: the lines under each generated table
naming the commit(s), the machine(s) and the package versions its runs' records name
(`gridlstm.run.provenance`), so that a table whose runs span commits or CPUs says so (a run's
outcome can move with the CPU's arithmetic), and older records say "not recorded" (never
guessed from commit times)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from gridlstm.analysis import record_tables
from gridlstm.run.runs import RESCORED


def code_of(folder: Path, spec: record_tables.TableSpec) -> str:
    """The line under a page's table that says which code made its runs (`code_line`)."""
    runs = [run for group in record_tables.groups_of(folder, spec).values() for run in group]
    return " ".join(line for line in (code_line(runs), machine_line(runs)) if line)


def commit_of(run: dict[str, Any]) -> str | None:
    """The commit a run's record names (`gridlstm.run.provenance`), with "+ changes" where
    tracked files differed from it; None for a record written before records named it."""
    made = (run.get("provenance") or {}).get("code") or {}
    commit = made.get("commit")
    if not commit:
        return None
    return f"{str(commit)[:12]}{' + uncommitted changes' if made.get('dirty') else ''}"


def noun(runs: list[dict[str, Any]]) -> str:
    """What a table's records are: training runs, or re-scores of their checkpoints
    (`gridlstm.evaluate`, whose record names the checkpoint) where every record is one."""
    return "re-score" if runs and all(r.get(RESCORED) for r in runs) else "run"


def code_line(runs: list[dict[str, Any]]) -> str:
    """Which code made a table's runs: one commit, several (each with its count: a table
    whose runs span commits says so), or "commit not recorded" for older records (never
    guessed from the times the commits were made)."""
    found = Counter(commit_of(r) for r in runs)
    old = found.pop(None, 0)
    parts = [f"{commit} ({n} run{'s' if n > 1 else ''})" for commit, n in found.most_common()]
    if old:
        parts.append(
            f"commit not recorded ({old} run{'s' if old > 1 else ''}, written before "
            "records named their code)"
        )
    if len(found) == 1 and not old:
        return f"Code: every {noun(runs)} at commit {next(iter(found))}."
    if not found:
        return (
            "Code: commit not recorded (the records were written before records named their code)."
        )
    return f"Code: the runs span {len(parts)} versions of the code: {'; '.join(parts)}."


def machine_of(run: dict[str, Any]) -> str | None:
    """The machine and versions a run's record names, in brief; None where it names none."""
    made = run.get("provenance") or {}
    box, versions = made.get("machine") or {}, made.get("versions") or {}
    if not box:
        return None
    gpu = f", {box['gpu']} x {box.get('gpu_count', 1)}" if box.get("gpu") else ""
    cpu = f"{box.get('cpu', '?')} ({box.get('cpu_kind', '?')}), {box.get('cores', '?')} cores"
    packages = ", ".join(f"{k} {versions[k]}" for k in ("torch", "lightning") if k in versions)
    threads = box.get("threads", "?")
    a_run = f"{threads} thread{'' if threads == 1 else 's'} a run"
    return f"{cpu}{gpu}, {a_run}; {packages or 'versions not recorded'}"


def machine_line(runs: list[dict[str, Any]]) -> str:
    """Which machine and versions made a table's runs: one, or each with its count; empty
    where no record names one (the code line already says those records are old)."""
    found = Counter(machine_of(r) for r in runs)
    old = found.pop(None, 0)
    if not found:
        return ""
    if len(found) == 1 and not old:
        return f"Machine: every {noun(runs)} on {next(iter(found))}."
    parts = [f"{box} ({n} run{'s' if n > 1 else ''})" for box, n in found.most_common()]
    if old:
        parts.append(f"not recorded ({old} run{'s' if old > 1 else ''})")
    return f"Machine: the runs span {len(parts)} machines or versions: {'; '.join(parts)}."

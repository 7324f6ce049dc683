"""A study runs from one commit: which code a queue run's jobs import (`Pin`), chosen before
any job starts.

* ``code=pinned`` (the default): the commit the stage's earlier queue runs pinned (its
  ``queue.json``'s ``code``), or this checkout's HEAD for a stage that has not run;
* ``code=head``: this checkout's HEAD (a stage moved on to newer code, recorded as such);
* ``code=<commit>``: that commit;
* ``code=checkout``: no snapshot, the checkout as it is (what a dry run uses; never for a
  run that publishes).

Each pinned commit becomes a snapshot (`gridlstm.run.code.make_snapshot`) under
``<runs>/.code/``; the executors start every job of the stage from it. A run that publishes
(``results=`` inside the checkout's ``docs/``) refuses uncommitted changes to the tracked
source (``src/``, ``conf/``, ``train.py``) and the study's declaration unless
``allow_dirty=true`` (recorded): a published number must name code that exists.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from gridlstm.analysis.job_records import read_queue
from gridlstm.run import code
from gridlstm.run.errors import ConfigError

CHECKOUT = "checkout"
PINNED = "pinned"
HEAD = "head"


@dataclass
class Pin:
    """The code a stage's jobs run: ``commit`` (full hash, or `CHECKOUT`), its ``snapshot``
    (None: the checkout), ``how`` it was chosen, and whether uncommitted changes were allowed."""

    commit: str
    snapshot: Path | None
    how: str
    allow_dirty: bool = False

    @property
    def conf(self) -> Path | None:
        """The configs the stage's jobs compose from (None: the checkout's)."""
        return self.snapshot / "conf" if self.snapshot else None

    def describe(self) -> str:
        if self.snapshot is None:
            return "the checkout as it is (code=checkout)"
        return f"commit {self.commit[:12]} ({self.how}) from its snapshot {self.snapshot}"

    def record(self) -> dict[str, object]:
        """``queue.json``'s ``code`` entry."""
        return {"commit": self.commit, "how": self.how, "allow_dirty": self.allow_dirty}


def earlier_commit(out: Path) -> str | None:
    """The commit a stage's earlier queue runs pinned (its results' ``queue.json``), or None."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        found = read_queue(out).get("code", {}).get("commit")
        return found if found and found != CHECKOUT else None
    return None


def publishes(results: Path, root: Path | None) -> bool:
    """Whether ``results`` lies in a checkout's ``docs/`` (the published records)."""
    target = results.resolve()
    homes = [Path.cwd().resolve() / "docs"] + ([root.resolve() / "docs"] if root else [])
    return any(target == home or target.is_relative_to(home) for home in homes)


def declarations(root: Path, studies_file: Path, claims: list[str]) -> list[str]:
    """The files that declare the studies: the studies file and each claim's ``study.yaml``,
    relative to the checkout (those inside it)."""
    found = [studies_file.resolve()]
    found += [(root / "docs" / "claims" / c.split("/")[0] / "study.yaml").resolve() for c in claims]
    inside = []
    for path in found:
        with contextlib.suppress(ValueError):
            inside.append(str(path.relative_to(root.resolve())))
    return sorted(set(inside))


def choose(
    *,
    code_option: str,
    allow_dirty: bool,
    results: Path,
    outs: dict[str, Path],
    studies_file: Path,
    claims: list[str],
) -> dict[str, Pin]:
    """Each study's `Pin` (``outs``: study -> its results folder); a ConfigError (one line,
    nothing started) for a dirty tree in a publishing run, a commit not in this clone, or a
    snapshot that cannot be made."""
    publishing = publishes(results, code.checkout_root())
    if code_option == CHECKOUT:
        if publishing:
            raise ConfigError(
                "code=checkout: a run that publishes (results= in docs/) runs from a snapshot "
                "of one commit; use code=pinned or code=head, or publish elsewhere"
            )
        return {name: Pin(CHECKOUT, None, "code=checkout", allow_dirty) for name in outs}
    root = code.checkout_root()
    if root is None:
        raise ConfigError(
            f"code={code_option}: the package is not imported from a git checkout "
            f"({code.PACKAGE_DIR}), so no commit can be pinned; run from a clone, or "
            "code=checkout to run this copy as it is (not for results= in docs/)"
        )
    declared = declarations(root, studies_file, claims)
    changed = code.changed_files(root, (*code.SOURCE_PATHS, *declared))
    if changed and publishing and not allow_dirty:
        listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if changed[5:] else "")
        raise ConfigError(
            f"uncommitted changes to {listed}: a run that publishes (results={results}) runs "
            "committed code only; commit them, or allow_dirty=true (recorded)"
        )
    head = code.resolve(root, "HEAD")
    if head is None:
        raise ConfigError(f"code={code_option}: {root} has no commit yet; commit first")
    pins: dict[str, Pin] = {}
    for name, out in outs.items():
        if code_option == PINNED:
            earlier = earlier_commit(out)
            commit, how = (earlier, "the stage's pinned commit") if earlier else (head, "HEAD")
        elif code_option == HEAD:
            commit, how = head, "code=head"
        else:
            commit, how = code.resolve(root, code_option), f"code={code_option}"
        if commit is None or code.resolve(root, commit) is None:
            raise ConfigError(
                f"{name}: commit {code_option if commit is None else commit} is not in this "
                "clone's history (a shallow clone?); fetch it (git fetch --unshallow), or "
                "code=head to move the stage to this checkout's HEAD (recorded)"
            )
        pins[name] = Pin(commit, None, how, allow_dirty)
    if changed and not publishing:
        print(
            f"[queue] note: uncommitted changes to {', '.join(changed[:3])}"
            f"{' ...' if changed[3:] else ''} are not in what the jobs run (commit "
            f"{head[:12]}); commit them, or code=checkout to run the checkout as it is",
            flush=True,
        )
    return pins


def make_snapshots(pins: dict[str, Pin], runs: Path) -> None:
    """Each pinned commit's snapshot under ``<runs>/.code/`` (after every check has passed:
    a refused queue run writes nothing)."""
    root = code.checkout_root()
    for pin in pins.values():
        if pin.commit != CHECKOUT and root is not None:
            pin.snapshot = code.make_snapshot(root, pin.commit, runs / ".code")

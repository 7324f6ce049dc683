"""Which code runs: the git checkout this package is imported from, its commit and uncommitted
changes, and snapshots of one commit that a study's jobs (and a re-run) import instead.

Why snapshots: a queue of jobs that imports whatever an editable checkout holds when each job
starts runs across every commit made while it waits. A snapshot is the commit's ``src/``,
``conf/``, ``train.py`` and ``pyproject.toml`` (``git archive``) in a folder of its own with a
``SNAPSHOT`` marker naming the commit; a job started with `environment` imports the package and
composes its configs from there, whatever happens to the checkout meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gridlstm
from gridlstm.run.errors import ConfigError

PACKAGE_DIR = Path(gridlstm.__file__).resolve().parent
MARKER = "SNAPSHOT"  # a snapshot's root holds the commit it was made from
SNAPSHOT_PATHS = ("src", "conf", "train.py", "pyproject.toml")
SOURCE_PATHS = ("src", "conf", "train.py")  # what a publishing run refuses uncommitted edits to
ENV = "GRIDLSTM_SNAPSHOT"  # set in a snapshot job's environment: the snapshot's root
NO_COMMIT = "no commit"


def git(root: Path, *args: str, text: bool = True) -> str | bytes | None:
    """``git -C root args`` output, None where git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=text, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def snapshot_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The snapshot this package is imported from (its ``SNAPSHOT`` marker), or None."""
    root = package_dir.parents[1]
    return root if (root / MARKER).is_file() else None


def checkout_root(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The git checkout whose ``src/gridlstm`` this package is, or None (an installed wheel, an
    export without ``.git``). Why the check: a virtual environment inside a checkout lies in
    its work tree without being its source."""
    root = package_dir.parents[1]
    top = git(root, "rev-parse", "--show-toplevel")
    if not top or Path(str(top).strip()).resolve() != root.resolve():
        return None
    return root if (root / "src" / "gridlstm").resolve() == package_dir.resolve() else None


def changed_files(root: Path, paths: tuple[str, ...] = ()) -> list[str]:
    """Tracked files under ``paths`` (all when empty) that differ from the commit."""
    out = git(root, "status", "--porcelain", "--untracked-files=no", "--", *paths)
    return [line[3:].strip() for line in str(out or "").splitlines() if line.strip()]


@dataclass
class Code:
    """Where the running package came from: ``commit`` (or `NO_COMMIT`), ``dirty`` (tracked
    files differ from it), ``diff`` (their difference, '' when clean), ``snapshot`` (the
    snapshot's root, '' when run from a checkout or an install)."""

    commit: str
    dirty: bool
    diff: str = ""
    snapshot: str = ""


def current(package_dir: Path = PACKAGE_DIR) -> Code:
    """The code this process runs (never an error: outside git, `NO_COMMIT`)."""
    snap = snapshot_root(package_dir)
    if snap is not None:
        return Code((snap / MARKER).read_text().split()[0], False, "", str(snap))
    root = checkout_root(package_dir)
    if root is None:
        return Code(NO_COMMIT, False)
    commit = str(git(root, "rev-parse", "HEAD") or "").strip() or NO_COMMIT
    diff = str(git(root, "diff", "HEAD", "--no-color", "--no-ext-diff") or "")
    return Code(commit, bool(diff), diff)


@functools.cache
def running(package_dir: Path = PACKAGE_DIR) -> Code:
    """`current` as this process first read it. A sweep's jobs run one after another in one
    process (Hydra's basic launcher) on the code it imported at its start; a later job must
    not record what the checkout holds by then (an edit or a commit made mid-sweep)."""
    return current(package_dir)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def resolve(root: Path, name: str) -> str | None:
    """The full commit ``name`` (a hash, a branch, HEAD) names in ``root``'s history, or None."""
    out = git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    return str(out).strip() if out else None


def make_snapshot(root: Path, commit: str, where: Path) -> Path:
    """``where/<commit>``: the commit's source as a snapshot (reused when it exists). Written
    into a temporary folder and renamed, so a failure (a full disk) leaves no half snapshot;
    raises ConfigError naming the problem."""
    target = where / commit
    if (target / MARKER).is_file():
        return target
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=where))
    except OSError as error:
        raise ConfigError(f"cannot make a snapshot of {commit[:12]} in {where}: {error}") from None
    try:
        archive = git(root, "archive", "--format=tar", commit, "--", *SNAPSHOT_PATHS, text=False)
        if not archive:
            raise ConfigError(
                f"cannot make a snapshot of {commit[:12]}: git archive failed in {root}"
            )
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)  # type: ignore[arg-type]
            handle.seek(0)
            with tarfile.open(fileobj=handle) as tar:
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, **safe)  # git archive of our own commit
        (tmp / MARKER).write_text(f"{commit}\n")
        try:
            tmp.rename(target)
        except OSError:  # made meanwhile by another process: theirs is the same commit
            if not (target / MARKER).is_file():
                raise
    except OSError as error:
        raise ConfigError(f"cannot make a snapshot of {commit[:12]} in {where}: {error}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def environment(snapshot: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """A job's environment that imports the package and its configs from ``snapshot``: its
    ``src`` first on PYTHONPATH (ahead of an editable install's path), ``GRIDLSTM_CONF``
    cleared (the configs beside the package are used), `ENV` naming the snapshot."""
    env = dict(os.environ if base is None else base)
    src = str((snapshot / "src").resolve())
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("GRIDLSTM_CONF", None)
    env[ENV] = str(snapshot.resolve())
    return env


_SWITCH_LOCK = threading.Lock()  # callers in threads share one environment


@contextlib.contextmanager
def pinned_environment(snapshot: Path | None) -> Iterator[None]:
    """The snapshot's environment (`gridlstm.run.code.environment`) while a job is submitted:
    sbatch and submitit's local controller pass the submitting process's environment on, so
    the worker unpickles and runs the job from the snapshot."""
    if snapshot is None:
        yield
        return
    with _SWITCH_LOCK:
        before = dict(os.environ)
        os.environ.clear()
        os.environ.update(environment(snapshot, before))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(before)

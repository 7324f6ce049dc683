"""A run directory's state: its ``metrics.json`` (with a ``status``) and where it resumes from.

Why a status: a sweep on a cluster ends with a mix of finished, preempted and diverged jobs,
and tables, requeued jobs and people must tell them apart without reading logs:

* ``completed``: trained to the end; the val/test metrics are those of the best checkpoint.
* ``interrupted``: stopped by SIGTERM / SIGINT (preemption, a time limit, Ctrl-C) after
  saving ``checkpoints/last.ckpt``; ``resume=auto`` continues it.
* ``diverged``: a non-finite or exploding loss, gradient norm or weights stopped it; the
  checkpoints on disk are from before (`gridlstm.run.callbacks.Divergence`).
* ``failed``: a job of a sweep (``-m``) whose config was invalid or that crashed; ``reason``
  holds the one-line error (the traceback is in the job's log) and the sweep went on.

``metrics.json`` is strict JSON (a non-finite value is written as null) and is replaced
atomically, so a kill mid-write leaves the previous file whole. This module is its only reader
and writer: train, evaluate, resume, the queue, sweeps and tables all go through
`read_record` / `load_record` / `write_metrics`, so a record without a status (written
before statuses existed) means ``completed`` everywhere.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

from gridlstm.data.files import write_atomic
from gridlstm.run.errors import ConfigError

RECORD = "metrics.json"
RESCORED = "ckpt_path"  # the key a re-score's record (gridlstm.evaluate) names its checkpoint by
RESUME_CHOICES = ("false", "auto")


class Status(str, Enum):
    """How a run ended (the ``status`` of its ``metrics.json``); compares equal to its text."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


COMPLETED, INTERRUPTED, DIVERGED, FAILED = Status


class RecordError(ValueError):
    """A run directory's ``metrics.json`` is missing or malformed (the message names it)."""


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN/Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> None:
    """Write the run's record (strict JSON, atomically, fsync'd before the rename)."""
    write_atomic(output_dir / RECORD, json.dumps(strict(metrics), indent=2) + "\n")


def load_record(output_dir: Path) -> dict[str, Any]:
    """The run's record with its ``status`` (a record written before statuses existed only
    ever described a completed run), or a RecordError naming the file and the problem."""
    path = output_dir / RECORD
    if not path.is_file():
        raise RecordError(f"{path}: missing (the job did not finish?)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: malformed JSON ({error.msg}, line {error.lineno})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: unreadable ({error})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: expected a JSON object")
    status = record.get("status", COMPLETED.value)
    try:
        record["status"] = Status(status)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise RecordError(f"{path}: status {status!r} is not one of {choices}") from None
    return record


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """`load_record`, or None where there is no usable record."""
    try:
        return load_record(output_dir)
    except RecordError:
        return None


def read_status(output_dir: Path) -> Status | None:
    """The status of the run recorded in ``output_dir`` (None: no usable record)."""
    record = read_record(output_dir)
    return None if record is None else record["status"]


def previous_wall_time(output_dir: Path) -> float:
    """Seconds the earlier, interrupted part of a run took (0 if unknown)."""
    record = read_record(output_dir) or {}
    try:
        return float(record.get("wall_time_s") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest resumable checkpoint of a run: ``checkpoints/last.ckpt`` (validation,
    SIGTERM, Ctrl-C) or Lightning's SLURM ``hpc_ckpt_*.ckpt`` (saved on the requeue signal)."""
    candidates = [output_dir / "checkpoints" / "last.ckpt", *output_dir.glob("hpc_ckpt_*.ckpt")]
    found = [path for path in candidates if path.is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def check_checkpoint(path: Path, option: str, expected: dict[str, str]) -> None:
    """A readable Lightning checkpoint of the same task and model, or one ConfigError line.
    Lightning then loads it with ``weights_only=True`` and builds nothing from its config."""
    from gridlstm.run import checkpoints  # torch: imported when a run starts

    checkpoint = checkpoints.read(path, option)
    saved = checkpoint.get("gridlstm_run") or {}
    for key, want in expected.items():
        have = saved.get(key)
        if have is not None and have != want:
            raise ConfigError(
                f"{option}={path}: the checkpoint is of {key}={have}, this run is {key}={want}; "
                f"resume with {key}={have} or pick a checkpoint of {key}={want}"
            )


def directory_option() -> str:
    """The option that chose this job's directory: a sweep's jobs live under
    ``hydra.sweep.dir``, a single run in ``hydra.run.dir``."""
    from gridlstm.run import hydra_runtime

    return "hydra.sweep.dir" if hydra_runtime.is_multirun() else "hydra.run.dir"


def resume_from(
    cfg_resume: Any, ckpt_path: Any, output_dir: Path, expected: dict[str, str]
) -> Path | None:
    """The checkpoint this run continues from (None: start fresh), or a ConfigError.

    ``ckpt_path`` names one explicitly; ``resume=auto`` takes the run directory's newest
    checkpoint if there is one. Refuses to start a fresh run over an earlier run's results.
    """
    resume = "false" if cfg_resume in (None, False) else str(cfg_resume).lower()
    if resume not in RESUME_CHOICES:
        raise ConfigError(f"resume={cfg_resume}: valid choices are false, auto")
    if ckpt_path not in (None, ""):
        path = Path(str(ckpt_path)).expanduser()
        check_checkpoint(path, "ckpt_path", expected)
        return path
    status = read_status(output_dir)
    found = latest_checkpoint(output_dir)
    if resume == "auto":
        if found is not None:
            check_checkpoint(found, "resume=auto", expected)
        return found
    if status == COMPLETED:
        raise ConfigError(
            f"run directory {output_dir} already holds a completed run; choose another "
            f"{directory_option()} (or evaluate its checkpoints with python -m gridlstm.evaluate)"
        )
    if status is not None or found is not None:
        what = (
            f"{'an' if status[0] in 'aeiou' else 'a'} {status} run"
            if status
            else "checkpoints of an earlier run"
        )
        raise ConfigError(
            f"run directory {output_dir} already holds {what}; continue it with resume=auto, "
            f"or choose another {directory_option()}"
        )
    return None

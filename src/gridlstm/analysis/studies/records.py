"""What a queue run keeps of earlier ones in a study's ``queue.json``: each job's seconds so far
and every queue run's start, end and wall time (appended, never overwritten), each time with
its UTC offset (`clock`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from gridlstm.analysis.job_records import QUEUE, read_queue
from gridlstm.analysis.studies.spec import DONE_EARLIER, NOT_STARTED, Job
from gridlstm.data.files import write_atomic
from gridlstm.run.clock import stamp


def complete_before(jobs: list[Job], out: Path) -> bool:
    """Whether the study was complete before this queue run: every job done earlier with its
    record already in ``out``. Its results are then left as they were (a re-run of the
    publishing command must not rewrite a committed queue.json)."""
    done = all(
        j.status == DONE_EARLIER and (out / "jobs" / j.name / "metrics.json").is_file()
        for j in jobs
    )
    return done and (out / QUEUE).is_file()


def carry_seconds(jobs: list[Job], out: Path) -> None:
    """Each job's seconds so far, from the results' earlier ``queue.json``: a job done in an
    earlier queue run keeps its cost, and a resumed one adds this run's to it."""
    earlier = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        earlier = {j["job"]: j for j in read_queue(out)["jobs"]}
    for job in jobs:
        with contextlib.suppress(TypeError, ValueError):
            job.seconds = float(earlier.get(job.name, {}).get("seconds") or 0.0)


def queue_runs(out: Path, summary: dict, wall_s: float) -> list[dict]:
    """Every queue run of the study so far, this one appended: its start, end, wall time and
    how many jobs it started. Why: queue.json is rewritten by each run, and a record that kept
    only the last start would hide when a study's first job began (what pre-registration is
    checked against)."""
    earlier: dict = {}
    with contextlib.suppress(ValueError):  # an unreadable record: this run's alone
        earlier = read_queue(out)
    runs = list(earlier.get("runs") or [])
    if not runs and earlier.get("started"):  # written before runs were kept: its one start
        runs = [{"started": earlier["started"], "device": earlier.get("device")}]
    ran = sum(1 for j in summary["jobs"] if j["status"] not in (DONE_EARLIER, NOT_STARTED))
    end = stamp()
    this = {"started": summary["started"], "ended": end, "wall_s": round(wall_s, 1)}
    this |= {"device": summary["device"], "launcher": summary["launcher"], "jobs_started": ran}
    this |= {"commit": summary["code"]["commit"]} if "code" in summary else {}
    return [*runs, this]


def write_queue(out: Path, summary: dict) -> None:
    """The study's ``queue.json``, written whole or not at all (a stopped queue leaves the
    last complete one)."""
    write_atomic(out / QUEUE, json.dumps(summary, indent=1) + "\n")

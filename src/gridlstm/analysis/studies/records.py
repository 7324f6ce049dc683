"""What a queue run keeps of earlier ones in a study's ``queue.json``: each job's seconds so far
and every queue run's start, end and wall time (appended, never overwritten), each time with
its UTC offset (`clock`), and the runs stopped before they could write it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from gridlstm.analysis.job_records import QUEUE, read_queue
from gridlstm.analysis.studies.spec import DONE_EARLIER, NOT_STARTED, Job
from gridlstm.data.files import write_atomic
from gridlstm.run.clock import moment, stamp

STARTS = "queue_starts.jsonl"  # each queue run's start, in the study's runs folder


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


def note_start(folder: Path, started: str) -> None:
    """Append this queue run's start to the study's runs folder before any job starts: a run
    stopped before it can write queue.json (a killed process, a lost machine) is still
    listed by the next one that ends (`queue_runs`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / STARTS).open("a") as handle:
        handle.write(json.dumps({"started": started}) + "\n")


def stopped_runs(folder: Path | None, listed: set[str]) -> list[dict]:
    """The queue runs noted in ``folder`` (`note_start`) that never wrote their end: each
    with its start and ``jobs_started`` unknown (None)."""
    path = folder / STARTS if folder else None
    if path is None or not path.is_file():
        return []
    starts = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError, TypeError, KeyError):
            starts.append(json.loads(line)["started"])
    note = "stopped before it wrote queue.json"
    return [
        {"started": s, "ended": None, "jobs_started": None, "note": note}
        for s in dict.fromkeys(starts)
        if s not in listed
    ]


def queue_runs(out: Path, summary: dict, wall_s: float, noted: Path | None = None) -> list[dict]:
    """Every queue run of the study so far, this one appended: its start, end, wall time and
    how many jobs it started; with ``noted`` (the study's runs folder), also those stopped
    before they wrote queue.json. Why: queue.json is rewritten by each run, and a record that
    kept only the last start would hide when a study's first job began (what pre-registration
    is checked against)."""
    earlier: dict = {}
    with contextlib.suppress(ValueError):  # an unreadable record: this run's alone
        earlier = read_queue(out)
    runs = list(earlier.get("runs") or [])
    if not runs and earlier.get("started"):  # written before runs were kept: its one start
        runs = [{"started": earlier["started"], "device": earlier.get("device")}]
    listed = {r.get("started") for r in runs} | {summary["started"]}
    runs = sorted(runs + stopped_runs(noted, listed), key=lambda r: moment(r["started"]))
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

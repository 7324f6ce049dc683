"""The study queue: a study's jobs side by side under one wall-clock deadline (the procedure
behind ``python -m gridlstm.queue``).

Why not a Hydra multirun: a GPU allocation (or a Slurm job) has a wall-clock limit, and
whatever has not finished by then must be stopped so that a later run of the queue continues
it; and a study's stages (the frontier rule, restore from results committed earlier, the
tables) sit around its jobs. Each job is ``train.py`` in a stable run directory
(``<runs>/<study>/<job>``) with ``resume=auto``, started by an executor
(`gridlstm.analysis.studies.executors`: this machine's processes, or submitit on a Slurm
cluster). At the deadline each running job gets SIGTERM, which saves
``checkpoints/last.ckpt`` and marks the run ``interrupted``; running the queue again
continues it. A job whose run is ``completed`` is not started again.

When the queue ends, each study's jobs are tabled (`gridlstm.analysis.sweep_report`) and the
tables, curves and each job's ``metrics.json``, overrides and curve are copied to
``<results>/<claim>/<tag>/`` (``tag=auto`` by default: cpu, gpu or the launcher;
``<tag>_dry_run/`` for a dry run; one study per claim), with ``queue.json`` saying what ran
where, for how long, and with what status. Those copies are what a fresh clone resumes
from (`restore`): an allocation's machine and its run directories go, the results committed
earlier stay.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gridlstm.analysis import sweep_report
from gridlstm.analysis.job_records import CURVE, job_curve, overrides_list, read_job, write_curve
from gridlstm.analysis.studies import pins, records, rules
from gridlstm.analysis.studies.executors import (
    Executor,
    Handle,
    Processes,
    make_executor,
)
from gridlstm.analysis.studies.preflight import check_jobs, conf_dir
from gridlstm.analysis.studies.spec import (
    DONE_EARLIER,
    FAILED_STATES,
    NO_RECORD,
    NOT_STARTED,
    PAST_FRONTIER,
    QUEUED,
    Job,
    easier,
    expand,
    interleave,
    load_studies,
    missing_data,
    past_frontier,
)
from gridlstm.run import runs as run_records
from gridlstm.run.clock import stamp
from gridlstm.run.errors import ConfigError
from gridlstm.run.provenance import device_name

GRACE_S = 120  # after SIGTERM: time to save last.ckpt before the job is killed
MIN_START_S = 60  # a job is not started with less time than this left
POLL_S = 2.0  # a slot with no ready job looks again after this long
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def restore(jobs: list[Job], out: Path, conf: Path | None = None) -> None:
    """Put back each job the results folder ``out`` holds as completed and this checkout's
    run directories lack (results committed earlier, on another machine or a fresh clone): its
    record, its overrides and its config composed again, so that the queue skips it and the
    study's table keeps it. A copy made under other overrides (the study changed since) is
    another job's: that job runs."""
    from hydra import compose, initialize_config_dir

    from gridlstm.run.conf import find_conf_dir

    for job in jobs:
        copy = out / "jobs" / job.name
        record = run_records.read_record(copy)
        if record is None or record.get("status") != run_records.COMPLETED:
            continue
        if run_records.read_record(job.run_dir) is not None:
            continue  # this checkout ran it: its own record wins
        if not (copy / "overrides.yaml").is_file():
            continue
        if overrides_list(copy / "overrides.yaml")[: len(job.overrides)] != job.overrides:
            continue
        with initialize_config_dir(config_dir=str(conf or find_conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides=job.overrides)
        (job.run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, job.run_dir / ".hydra" / "config.yaml")
        shutil.copy2(copy / "overrides.yaml", job.run_dir / ".hydra" / "overrides.yaml")
        if (copy / CURVE).is_file():
            shutil.copy2(copy / CURVE, job.run_dir / CURVE)
        shutil.copy2(copy / "metrics.json", job.run_dir / "metrics.json")  # last: the record
        job.note = f"restored from {copy}"


class Queue:
    """Runs jobs ``slots`` at a time until ``deadline`` (time.monotonic()), each through its
    study's executor (this machine's processes unless given)."""

    def __init__(
        self,
        jobs: list[Job],
        slots: int,
        deadline: float,
        threads: int,
        frontiers: dict[str, dict[str, Any]] | None = None,
        executors: dict[str, Executor] | None = None,
    ) -> None:
        self.jobs, self.slots, self.deadline, self.threads = jobs, slots, deadline, threads
        self.frontiers = frontiers or {}  # study -> its frontier rule
        self.executors = executors or {}  # study -> where its jobs run
        self.lock = threading.Lock()
        self.handles: set[Handle] = set()
        self.stopped = False  # SIGTERM / Ctrl-C to the queue: stop the jobs, start no more
        self.taken: set[int] = set()  # indices of the jobs a slot has taken

    def executor(self, job: Job) -> Executor:
        return self.executors.get(job.study) or Processes()

    def skip(self, job: Job) -> bool:
        """Whether ``job`` is not to start (completed earlier, past its frontier, stopped,
        too little time left): its status and note say why."""
        if run_records.read_status(job.run_dir) == run_records.COMPLETED:
            job.status, job.note = DONE_EARLIER, job.note or "completed in an earlier queue run"
            return True
        frontier = self.frontiers.get(job.study)
        if frontier and (reason := past_frontier(job, self.jobs, frontier)):
            job.status, job.note = PAST_FRONTIER, reason
            print(f"[queue] {job.study}/{job.name}: not run, {reason}", flush=True)
            return True
        left = self.deadline - time.monotonic()
        if self.stopped:
            job.status, job.note = NOT_STARTED, "the queue was stopped"
            return True
        if left < MIN_START_S:
            job.status, job.note = NOT_STARTED, f"only {left:.0f} s left of the deadline"
            return True
        return False

    def run_one(self, job: Job) -> None:
        if self.skip(job):
            return
        job.run_dir.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        handle = self.executor(job).start(job, self.threads)
        with self.lock:
            self.handles.add(handle)
            if self.stopped:  # the stop came between the start and now
                handle.stop()
        try:
            code = handle.wait(max(self.deadline - time.monotonic(), 1))
            if code is None:
                job.note = "stopped at the deadline (SIGTERM); resume=auto continues it"
                handle.stop()
                code = handle.wait(GRACE_S)
            if code is None:
                handle.kill()
                code = handle.wait(GRACE_S)
                job.note = "killed after the deadline's grace period"
        finally:
            with self.lock:
                self.handles.discard(handle)
        elapsed = time.monotonic() - start
        job.seconds, job.returncode = round(job.seconds + elapsed, 1), code
        status = run_records.read_status(job.run_dir)
        job.status = status or (run_records.FAILED if code else NO_RECORD)
        if job.status in FAILED_STATES and (job.note or self.stopped):
            # SIGTERM before train.py had set up its handler: nothing was trained or lost.
            job.status, job.note = NOT_STARTED, "stopped while starting up"
        print(
            f"[queue] {job.study}/{job.name}: {job.status} after {elapsed:.0f} s"
            + (f" ({job.note})" if job.note else ""),
            flush=True,
        )

    def ready(self, job: Job) -> bool:
        """A frontier job is ready once its case's easier jobs have finished: they decide
        whether it runs at all."""
        frontier = self.frontiers.get(job.study)
        if frontier is None:
            return True
        return all(o.status != QUEUED for o in easier(job, self.jobs, frontier["key"]))

    def next_job(self) -> Job | None:
        """The first job in order that no slot has taken and that is ready (a job waiting on
        its case's easier one leaves the slot to the next ready job); None when all are
        taken. Once the queue is stopped or past its deadline, the next job in order."""
        while True:
            with self.lock:
                left = [i for i in range(len(self.jobs)) if i not in self.taken]
                if not left:
                    return None
                ending = self.stopped or time.monotonic() >= self.deadline
                found = next((i for i in left if ending or self.ready(self.jobs[i])), None)
                if found is not None:
                    self.taken.add(found)
                    return self.jobs[found]
            time.sleep(POLL_S)

    def slot(self) -> None:
        while (job := self.next_job()) is not None:
            self.run_one(job)

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=self.slots) as pool:
            slots = [pool.submit(self.slot) for _ in range(self.slots)]
        for slot in slots:
            slot.result()  # a slot's error is the queue's, as with pool.map before

    def stop_all(self) -> None:
        with self.lock:
            self.stopped = True
            for handle in self.handles:
                handle.stop()


def results_folder(results: Path, claim: str, tag: str, dry_run: bool) -> Path:
    return results / claim / (f"{tag}_dry_run" if dry_run else tag)


def collect(name: str, jobs: list[Job], runs: Path, out: Path) -> None:
    """Tables and per-job metrics of one study into ``out`` (replacing an earlier copy)."""
    sweep = runs / name
    out.mkdir(parents=True, exist_ok=True)
    try:
        sweep_report.report(sweep)
    except sweep_report.TableError as error:
        print(f"[queue] {name}: no table ({error})", flush=True)
    for artefact in ("table.md", "table.csv", "table_seeds.csv", "curves.png"):
        if (sweep / artefact).is_file():
            shutil.copy2(sweep / artefact, out / artefact)
    kept = ("metrics.json", ".hydra/overrides.yaml", CURVE, "probe.csv", "provenance.diff")
    for job in jobs:
        for part in kept:
            if (job.run_dir / part).is_file():
                target = out / "jobs" / job.name / Path(part).name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(job.run_dir / part, target)
        if (job.run_dir / "csv" / "metrics.csv").is_file():  # its curve, for a later restore
            with contextlib.suppress(ValueError):
                curve = job_curve(sweep, read_job(job.run_dir))
                write_curve(out / "jobs" / job.name / CURVE, curve)


def run_studies(
    studies_file: Path,
    *,
    minutes: float,
    jobs: int,
    threads: int,
    only: list[str],
    runs: Path,
    results: Path,
    tag: str,
    dry_run: bool,
    launcher: str = "local",
    launcher_options: dict[str, Any] | None = None,
    code: str = pins.PINNED,
    allow_dirty: bool = False,
) -> list[Job]:
    """Run the chosen studies (all when ``only`` is empty) until the deadline, then table
    each into ``<results>/<claim>/<tag>/``; returns the jobs that failed. ``launcher`` says
    where the jobs run (`gridlstm.analysis.studies.executors`); ``code`` which code they run
    (`gridlstm.analysis.studies.pins`: a dry run runs the checkout)."""
    studies = load_studies(studies_file)
    chosen = only or list(studies)
    unknown = [s for s in chosen if s not in studies]
    if unknown:
        raise ConfigError(
            f"only={','.join(only)}: unknown studies {unknown}; choices: " + ", ".join(studies)
        )
    runs = runs / ("dry_run" if dry_run else "")
    started = time.time()
    deadline = time.monotonic() + minutes * 60
    groups, skipped = {}, {}
    for name in chosen:
        if studies[name].get("rule") is not None:
            out = results_folder(results, studies[name]["claim"], tag, dry_run)
            found = rules.resolve(name, studies[name], results, out, write=not dry_run)
            if isinstance(found, str):
                skipped[name] = found
                print(f"[queue] {name}: skipped: {found}", flush=True)
                continue
            studies[name] = {**studies[name], "cases": found}
        expanded = expand(name, studies[name], runs, dry_run)
        reason = missing_data(studies[name], expanded[0].overrides)
        if reason:
            skipped[name] = reason
            print(f"[queue] {name}: skipped: {reason}", flush=True)
        else:
            groups[name] = expanded
    # Where the jobs run first (a bad launcher is one line at once), then every job composed.
    executors = {
        name: make_executor(
            launcher,
            {**(studies[name].get("launcher") or {}), **(launcher_options or {})},
            conf_dir(),
        )
        for name in groups
    }
    outs = {n: results_folder(results, studies[n]["claim"], tag, dry_run) for n in groups}
    pinned = pins.choose(
        code_option=pins.CHECKOUT if dry_run else code,
        allow_dirty=allow_dirty,
        results=results,
        outs=outs,
        studies_file=studies_file,
        claims=[studies[n]["claim"] for n in groups],
    )
    for name, group in groups.items():
        check_jobs(group, expand(name, studies[name], runs, False) if dry_run else None)
    pins.make_snapshots(pinned, runs)
    for name, group in groups.items():
        for job in group:
            job.snapshot = pinned[name].snapshot
        restore(group, outs[name], pinned[name].conf)
        records.carry_seconds(group, outs[name])
        records.note_start(runs / name, stamp(started))
        print(f"[queue] {name}: runs {pinned[name].describe()}", flush=True)
    frontiers = {n: studies[n]["frontier"] for n in groups if studies[n].get("frontier")}
    queue = Queue(interleave(list(groups.values())), jobs, deadline, threads, frontiers, executors)
    where = sorted({e.where() for e in executors.values()}) or [device_name()]
    print(
        f"[queue] {len(queue.jobs)} jobs of {len(groups)} studies, {jobs} at a time, "
        f"deadline {minutes:g} min, on {'; '.join(where)}",
        flush=True,
    )
    # Local jobs run in their own sessions: the queue passes SIGTERM/SIGINT on (last.ckpt saved).
    previous = {s: signal.signal(s, lambda *_: queue.stop_all()) for s in STOP_SIGNALS}
    try:
        queue.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for name, group in groups.items():
        out = results_folder(results, studies[name]["claim"], tag, dry_run)
        if records.complete_before(group, out):  # its results are left as they were
            print(f"[queue] {name}: complete before this run; {out} unchanged", flush=True)
            continue
        collect(name, group, runs, out)
        summary = {
            "study": name,
            "device": executors[name].where(),
            "launcher": launcher,
            "dry_run": dry_run,
            "started": stamp(started),
            "deadline_minutes": minutes,
            "jobs_side_by_side": jobs,
            "code": pinned[name].record(),
            "jobs": [
                {
                    "job": j.name,
                    "status": j.status,
                    "seconds": j.seconds,
                    "returncode": j.returncode,
                    "note": j.note,
                    "overrides": j.overrides,
                }
                for j in group
            ],
        }
        summary["runs"] = records.queue_runs(out, summary, time.time() - started, runs / name)
        records.write_queue(out, summary)
        print(f"[queue] {name}: results in {out}", flush=True)
    every = [j for js in groups.values() for j in js]
    failed = [j for j in every if j.status in FAILED_STATES]
    earlier = [j for j in every if j.status == DONE_EARLIER]
    restored = sum(j.note.startswith("restored from") for j in earlier)
    waiting = [j for j in every if j.status == NOT_STARTED]
    passed = [j for j in every if j.status == PAST_FRONTIER]
    ran = len(every) - len(earlier) - len(waiting) - len(passed)
    print(
        f"[queue] done in {time.time() - started:.0f} s: {ran} ran, {len(earlier)} done "
        f"earlier ({restored} restored from the results), {len(passed)} past the frontier, "
        f"{len(waiting)} not started, {len(failed)} failed"
        + "".join(f"\n  {j.study}/{j.name}: see {j.log}" for j in failed)
        + "".join(f"\n  {n}: skipped: {r}" for n, r in skipped.items()),
        flush=True,
    )
    if waiting and not ran:  # the deadline left no time for any job: not a success
        print(
            f"[queue] started nothing: {len(waiting)} jobs wait and minutes={minutes} left "
            f"too little time to start one (a job needs at least {MIN_START_S} s)",
            flush=True,
        )
        return failed + waiting
    return failed

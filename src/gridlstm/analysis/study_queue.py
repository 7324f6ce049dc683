"""The study queue: many ``train.py`` jobs side by side under one wall-clock deadline
(the procedure behind ``python -m gridlstm.queue``).

Why not a Hydra multirun: a GPU allocation (or a Slurm job) has a wall-clock limit, and
whatever has not finished by then must be stopped so that a later run of the queue continues
it. Each job here is its
own ``train.py`` process in its own process group, in a stable run directory
(``<runs>/<study>/<job>``) with ``resume=auto``. At the deadline each running job gets
SIGTERM, which saves ``checkpoints/last.ckpt`` and marks the run ``interrupted``; running the
queue again continues it. A job whose run is ``completed`` is not started again.

Longer than 400 lines: the studies file's format (grid, cases, the frontier rule) and its
checks sit beside the procedure that runs it, so that one file says what a study means; the
format is the part to move out if it grows.

When the queue ends, each study's jobs are tabled (`gridlstm.analysis.tables`) and the
tables, curves and each job's ``metrics.json``, overrides and curve are copied to
``<results>/<claim>/<tag>/`` (``tag=gpu`` by default; ``<tag>_dry_run/`` for a dry run; one
study per claim), with ``queue.json`` saying what ran where, for how long, and with what
status. Those copies are what a fresh clone resumes from (`restore`): an allocation's
machine and its run directories go, the results committed earlier stay.

The studies file (YAML) maps a study name to:

* ``claim``: the folder under ``results`` (e.g. ``addition_depth``);
* ``overrides``: ``key=value`` strings every job gets;
* ``grid``: ``{key: [values]}``, one job per combination (in file order);
* ``cases``: optional list of ``{key: value}`` settings (e.g. each family's chosen
  configuration), each run at every grid combination: jobs go grid combination by grid
  combination, every case at the first before any at the second;
* ``frontier``: optional ``{key, metric, below}``, a rule for sweeps that go up in difficulty
  (e.g. ``task.datamodule.bits``): a job is not started when the same case, at a smaller value
  of ``key``, completed with ``metric`` below ``below`` (at chance there: a harder setting is
  not run). Fixed before any result, it applies to every case alike;
* ``needs``: optional ``{override_key: description}`` of data files that must exist
  (a missing one skips the study with one line, naming the override to set);
* ``dry_run``: overrides added by ``dry_run=true`` (a few steps at tiny sizes, on the CPU),
  after the grid's, so they win over it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gridlstm.data.files import write_atomic
from gridlstm.run import runs as run_records
from gridlstm.run.config import ConfigError

STUDY_KEYS = {"claim", "overrides", "grid", "cases", "frontier", "needs", "dry_run"}
FRONTIER_KEYS = {"key", "metric", "below"}
GRACE_S = 120  # after SIGTERM: time to save last.ckpt before SIGKILL
MIN_START_S = 60  # a job is not started with less time than this left
POLL_S = 2.0  # a slot with no ready job looks again after this long
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A job's state where it has no run record to speak for it.
QUEUED, DONE_EARLIER, NOT_STARTED, NO_RECORD = "queued", "done earlier", "not started", "no metrics"
PAST_FRONTIER = "past the frontier"  # not run: the frontier rule
FAILED_STATES = (run_records.FAILED, NO_RECORD)


@dataclass
class Job:
    study: str
    name: str
    overrides: list[str]
    run_dir: Path
    log: Path
    status: str = QUEUED  # a run's `Status`, or one of the queue's own states
    seconds: float = 0.0
    returncode: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    combo: dict[str, Any] = field(default_factory=dict)  # the case's and grid's values


def job_name(combo: dict[str, Any]) -> str:
    """A folder name from the swept values: ``model=grid2d, model.net.num_layers=4`` gives
    ``grid2d-num_layers4`` (the model by name, other keys by their last part)."""
    parts = [str(v) if k == "model" else f"{str(k).split('.')[-1]}{v}" for k, v in combo.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts)) or "job"


def load_studies(path: Path) -> dict[str, dict[str, Any]]:
    """The studies file, checked: one ConfigError naming the study and key that is wrong."""
    if not path.is_file():
        raise ConfigError(f"studies={path}: no such file")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"studies={path}: expected a mapping of study names to studies")
    claims: dict[str, str] = {}
    for name, study in raw.items():
        if not isinstance(study, dict):
            raise ConfigError(f"{path}: study {name!r} must be a mapping")
        unknown = set(study) - STUDY_KEYS
        if unknown:
            raise ConfigError(
                f"{path}: study {name!r} has unknown keys {sorted(unknown)}; "
                f"valid keys: {', '.join(sorted(STUDY_KEYS))}"
            )
        if not study.get("claim"):
            raise ConfigError(f"{path}: study {name!r} needs a claim (its results folder)")
        if study["claim"] in claims:
            raise ConfigError(
                f"{path}: studies {claims[study['claim']]!r} and {name!r} share "
                f"claim {study['claim']!r}; each study needs its own folder"
            )
        claims[study["claim"]] = name
        grid = study.get("grid") or {}
        if not isinstance(grid, dict) or any(
            not isinstance(v, list) or not v for v in grid.values()
        ):
            raise ConfigError(f"{path}: study {name!r}: grid must map keys to non-empty lists")
        cases = study.get("cases")
        if cases is not None and (
            not isinstance(cases, list)
            or not cases
            or any(not isinstance(c, dict) or not c for c in cases)
        ):
            raise ConfigError(f"{path}: study {name!r}: cases must be a non-empty list of mappings")
        check_frontier(path, name, study.get("frontier"), grid)
    return raw


def check_frontier(path: Path, name: str, frontier: Any, grid: dict[str, Any]) -> None:
    if frontier is None:
        return
    if not isinstance(frontier, dict) or set(frontier) != FRONTIER_KEYS:
        raise ConfigError(
            f"{path}: study {name!r}: frontier needs exactly the keys "
            f"{', '.join(sorted(FRONTIER_KEYS))} (e.g. key: task.datamodule.bits, "
            "metric: val/acc, below: 0.6)"
        )
    if frontier["key"] not in grid:
        raise ConfigError(
            f"{path}: study {name!r}: frontier key {frontier['key']!r} is not a grid key; "
            f"grid keys: {', '.join(grid) or 'none'}"
        )
    if isinstance(frontier["below"], bool) or not isinstance(frontier["below"], int | float):
        raise ConfigError(f"{path}: study {name!r}: frontier below={frontier['below']!r}: a number")


def expand(name: str, study: dict[str, Any], runs: Path, dry_run: bool) -> list[Job]:
    grid = study.get("grid") or {}
    base = [os.path.expandvars(str(o)) for o in study.get("overrides") or []]  # $DATA paths
    # The dry run's overrides come last: they win over the grid's (tiny sizes, on the CPU).
    tiny = [os.path.expandvars(str(o)) for o in study.get("dry_run") or []] if dry_run else []
    jobs = []
    for values in itertools.product(*grid.values()) if grid else [()]:
        for case in study.get("cases") or [{}]:
            combo = {**case, **dict(zip(grid.keys(), values, strict=True))}
            job = job_name(combo) if combo else name
            run_dir = runs / name / job
            overrides = base + [f"{k}={v}" for k, v in combo.items()] + tiny
            log = run_dir.parent / f"{job}.log"
            jobs.append(Job(name, job, overrides, run_dir, log, combo=combo))
    return jobs


def easier(job: Job, jobs: list[Job], key: str) -> list[Job]:
    """The same case's jobs at smaller values of the frontier ``key``."""
    case = {k: v for k, v in job.combo.items() if k != key}
    return [
        other
        for other in jobs
        if other.study == job.study
        and {k: v for k, v in other.combo.items() if k != key} == case
        and other.combo[key] < job.combo[key]
    ]


def past_frontier(job: Job, jobs: list[Job], frontier: dict[str, Any]) -> str | None:
    """Why ``job`` is past its case's frontier (a smaller value of the frontier key ended
    below the bar), or None."""
    key, metric, below = frontier["key"], frontier["metric"], float(frontier["below"])
    for other in easier(job, jobs, key):
        record = run_records.read_record(other.run_dir)
        if record is None or record.get("status") != run_records.COMPLETED:
            continue
        value = record.get(metric)
        if isinstance(value, int | float) and value < below:
            return f"{metric} {value:.3f} < {below:g} at {key}={other.combo[key]}"
    return None


def missing_data(study: dict[str, Any], overrides: list[str]) -> str | None:
    """A line naming the data a study needs and lacks, or None."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    for key, what in (study.get("needs") or {}).items():
        value = given.get(key, "")
        if not value or "$" in value or not Path(value).expanduser().exists():
            return f"needs {what} ({key}={value or '?'}: not found; set it in the environment)"
    return None


def check_jobs(jobs: list[Job]) -> None:
    """Compose every job's config before any starts: a typo in the studies file is one
    ConfigError naming the job, not a failure found after the GPU's time has been spent."""
    from gridlstm.run.conf import find_conf_dir
    from gridlstm.run.config import compose_problem
    from gridlstm.run.hydra_runtime import register_resolvers

    conf = find_conf_dir()
    if conf is None:
        raise ConfigError("no conf/train.yaml found: run from the repository root")
    register_resolvers()
    for job in jobs:
        if problem := compose_problem(job.overrides, conf):
            raise ConfigError(f"{job.study}/{job.name}: {problem}")


def restore(jobs: list[Job], out: Path) -> None:
    """Put back each job the results folder ``out`` holds as completed and this checkout's
    run directories lack (results committed earlier, on another machine or a fresh clone): its
    record, its overrides and its config composed again, so that the queue skips it and the
    study's table keeps it. A copy made under other overrides (the study changed since) is
    another job's: that job runs."""
    from hydra import compose, initialize_config_dir

    from gridlstm.analysis.tables import CURVE
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
        listed = OmegaConf.to_container(OmegaConf.load(copy / "overrides.yaml"))
        if [str(o) for o in listed][: len(job.overrides)] != job.overrides:
            continue
        with initialize_config_dir(config_dir=str(find_conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides=job.overrides)
        (job.run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, job.run_dir / ".hydra" / "config.yaml")
        shutil.copy2(copy / "overrides.yaml", job.run_dir / ".hydra" / "overrides.yaml")
        if (copy / CURVE).is_file():
            shutil.copy2(copy / CURVE, job.run_dir / CURVE)
        shutil.copy2(copy / "metrics.json", job.run_dir / "metrics.json")  # last: the record
        job.note = f"restored from {copy}"


def carry_seconds(jobs: list[Job], out: Path) -> None:
    """Each job's seconds so far, from the results' earlier ``queue.json``: a job done in an
    earlier queue run keeps its cost, and a resumed one adds this run's to it."""
    earlier = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        earlier = {j["job"]: j for j in json.loads((out / "queue.json").read_text())["jobs"]}
    for job in jobs:
        with contextlib.suppress(TypeError, ValueError):
            job.seconds = float(earlier.get(job.name, {}).get("seconds") or 0.0)


class Queue:
    """Runs jobs ``slots`` at a time until ``deadline`` (time.monotonic())."""

    def __init__(
        self,
        jobs: list[Job],
        slots: int,
        deadline: float,
        threads: int,
        frontiers: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.jobs, self.slots, self.deadline, self.threads = jobs, slots, deadline, threads
        self.frontiers = frontiers or {}  # study -> its frontier rule
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopped = False  # SIGTERM / Ctrl-C to the queue: stop the jobs, start no more
        self.taken: set[int] = set()  # indices of the jobs a slot has taken

    def command(self, job: Job) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gridlstm.train",
            *job.overrides,
            f"hydra.run.dir={job.run_dir}",
            "resume=auto",
            "print_config=false",
            f"hardware.threads={self.threads}",
        ]

    def run_one(self, job: Job) -> None:
        if run_records.read_status(job.run_dir) == run_records.COMPLETED:
            job.status, job.note = DONE_EARLIER, job.note or "completed in an earlier queue run"
            return
        frontier = self.frontiers.get(job.study)
        if frontier and (reason := past_frontier(job, self.jobs, frontier)):
            job.status, job.note = PAST_FRONTIER, reason
            print(f"[queue] {job.study}/{job.name}: not run, {reason}", flush=True)
            return
        left = self.deadline - time.monotonic()
        if self.stopped:
            job.status, job.note = NOT_STARTED, "the queue was stopped"
            return
        if left < MIN_START_S:
            job.status, job.note = NOT_STARTED, f"only {left:.0f} s left of the deadline"
            return
        job.run_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(self.threads)}
        start = time.monotonic()
        with job.log.open("a") as log:
            log.write(f"$ {' '.join(self.command(job))}\n")
            log.flush()
            proc = subprocess.Popen(
                self.command(job),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            with self.lock:
                self.procs.add(proc)
                if self.stopped:  # the stop came between the start and now
                    os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=max(self.deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                job.note = "stopped at the deadline (SIGTERM); resume=auto continues it"
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    job.note = "killed after the deadline's grace period"
            finally:
                with self.lock:
                    self.procs.discard(proc)
        elapsed = time.monotonic() - start
        job.seconds, job.returncode = round(job.seconds + elapsed, 1), proc.returncode
        status = run_records.read_status(job.run_dir)
        job.status = status or (run_records.FAILED if proc.returncode else NO_RECORD)
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
            for proc in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)


def interleave(groups: list[list[Job]]) -> list[Job]:
    """One job of each study in turn, so that every study makes progress before the deadline."""
    return [j for row in itertools.zip_longest(*groups) for j in row if j is not None]


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001  (a broken CUDA setup still gets a report)
        pass
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def results_folder(results: Path, claim: str, tag: str, dry_run: bool) -> Path:
    return results / claim / (f"{tag}_dry_run" if dry_run else tag)


def collect(name: str, jobs: list[Job], runs: Path, out: Path) -> None:
    """Tables and per-job metrics of one study into ``out`` (replacing an earlier copy)."""
    from gridlstm.analysis.tables import CURVE, TableError, job_curve, read_job, report, write_curve

    sweep = runs / name
    out.mkdir(parents=True, exist_ok=True)
    try:
        report(sweep)
    except TableError as error:
        print(f"[queue] {name}: no table ({error})", flush=True)
    for artefact in ("table.md", "table.csv", "table_seeds.csv", "curves.png"):
        if (sweep / artefact).is_file():
            shutil.copy2(sweep / artefact, out / artefact)
    for job in jobs:
        for part in ("metrics.json", ".hydra/overrides.yaml", CURVE, "probe.csv"):
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
) -> list[Job]:
    """Run the chosen studies (all when ``only`` is empty) until the deadline, then table
    each into ``<results>/<claim>/<tag>/``; returns the jobs that failed."""
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
        expanded = expand(name, studies[name], runs, dry_run)
        reason = missing_data(studies[name], expanded[0].overrides)
        if reason:
            skipped[name] = reason
            print(f"[queue] {name}: skipped: {reason}", flush=True)
        else:
            groups[name] = expanded
    check_jobs([j for js in groups.values() for j in js])
    for name, group in groups.items():
        out = results_folder(results, studies[name]["claim"], tag, dry_run)
        restore(group, out)
        carry_seconds(group, out)
    frontiers = {n: studies[n]["frontier"] for n in groups if studies[n].get("frontier")}
    queue = Queue(interleave(list(groups.values())), jobs, deadline, threads, frontiers)
    print(
        f"[queue] {len(queue.jobs)} jobs of {len(groups)} studies, {jobs} at a time, "
        f"deadline {minutes:g} min, on {device_name()}",
        flush=True,
    )
    # The jobs run in their own sessions (a terminal's Ctrl-C does not reach them): the queue
    # passes SIGTERM and SIGINT on, and each job saves last.ckpt as at the deadline.
    previous = {s: signal.signal(s, lambda *_: queue.stop_all()) for s in STOP_SIGNALS}
    try:
        queue.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for name, group in groups.items():
        out = results_folder(results, studies[name]["claim"], tag, dry_run)
        collect(name, group, runs, out)
        summary = {
            "study": name,
            "device": device_name(),
            "dry_run": dry_run,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "deadline_minutes": minutes,
            "jobs_side_by_side": jobs,
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
        write_atomic(out / "queue.json", json.dumps(summary, indent=1) + "\n")
        print(f"[queue] {name}: results in {out}", flush=True)
    failed = [j for js in groups.values() for j in js if j.status in FAILED_STATES]
    print(
        f"[queue] done in {time.time() - started:.0f} s; {len(failed)} failed"
        + "".join(f"\n  {j.study}/{j.name}: see {j.log}" for j in failed)
        + "".join(f"\n  {n}: skipped: {r}" for n, r in skipped.items()),
        flush=True,
    )
    return failed

"""Where a study's jobs run: this machine's own processes (``launcher=local``) or submitit
(``launcher=slurm``, ``launcher=submitit_local``, or any ``conf/hydra/launcher`` config built
on ``submitit_slurm`` / ``submitit_local``): the same launcher configs the sweeps use.

The queue (`gridlstm.analysis.studies.runner`) sees one interface: ``start(job)`` gives a
handle that it waits on with a timeout, stops gracefully (SIGTERM: the run saves
``checkpoints/last.ckpt`` and ends ``interrupted``; a later run of the queue resumes it) and,
after a grace period, kills. Each job is ``train.py`` with ``resume=auto`` in its own run
directory, so a requeued Slurm job, a later run of the queue and a job killed mid-run all
continue from the job's last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridlstm.analysis.studies.spec import Job
from gridlstm.run import code
from gridlstm.run.conf import find_conf_dir
from gridlstm.run.errors import ConfigError
from gridlstm.run.provenance import device_name

LOCAL = "local"  # the queue's own processes on this machine
# submitit's executors by the Hydra launcher config each launcher config is built on.
SUBMITIT_BASES = {"submitit_slurm": "slurm", "submitit_local": "local"}
POLL_S = 1.0  # how often a submitit job's state is read while waiting
# Launcher options the queue sets itself: the folder (beside the study's run directories)
# and the job's name (study/job).
QUEUE_OWNED = {"_target_", "submitit_folder", "name"}


# W&B's own variable for wandb.init's group: a study's jobs share one group (a sweep's jobs
# already share theirs, `gridlstm.run.loggers`); a group the user set is kept.
WANDB_GROUP = "WANDB_RUN_GROUP"


def train_argv(job: Job, threads: int) -> list[str]:
    """The overrides a job's ``train.py`` runs with."""
    return [
        *job.overrides,
        f"hydra.run.dir={job.run_dir}",
        "resume=auto",
        "print_config=false",
        f"hardware.threads={threads}",
    ]


class ProcessHandle:
    """A started job, as the queue holds either kind: ``wait`` (its exit code, None while it
    runs past ``timeout``), ``stop`` (SIGTERM, as at a time limit: it saves ``last.ckpt``)
    and ``kill``."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class Processes:
    """Each job its own ``train.py`` process in its own process group (a terminal's Ctrl-C
    reaches the queue, which passes the stop on as SIGTERM), its output in ``<job>.log``;
    ``where`` (as `Submitit`'s) names the machine for ``queue.json``."""

    name = LOCAL

    def start(self, job: Job, threads: int) -> ProcessHandle:
        command = [sys.executable, "-m", "gridlstm.train", *train_argv(job, threads)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
        env.setdefault(WANDB_GROUP, job.study)
        if job.snapshot is not None:  # the stage's pinned code, not the checkout's
            env = code.environment(job.snapshot, env)
        with job.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return ProcessHandle(proc)

    def where(self) -> str:
        return device_name()


def exit_code(error: SystemExit) -> int:
    """A command's exit status from its SystemExit, as the shell would see it."""
    code = error.code
    return code if isinstance(code, int) else (0 if code is None else 1)


@dataclass
class TrainJob:
    """What a submitit job runs: ``train.py`` in the worker's own process (no process below
    it for a signal to miss). A time limit or preemption requeues it (``checkpoint``), and
    the requeued job resumes from the run's last checkpoint (``resume=auto``)."""

    argv: list[str]
    cwd: str
    threads: int
    group: str = ""  # the study: the W&B group of its jobs
    requeued: bool = False

    def __call__(self) -> int:
        os.chdir(self.cwd)
        os.environ.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(self.threads))
        if self.group:
            os.environ.setdefault(WANDB_GROUP, self.group)
        sys.argv = ["gridlstm.train", *self.argv]
        try:
            # As `python -m gridlstm.train` runs it (the command, not an import of it: the
            # analysis layer sits below the commands).
            runpy.run_module("gridlstm.train", run_name="__main__", alter_sys=True)
        except SystemExit as error:
            if self.requeued:  # submitit's own exit after a requeue: let it end the job
                raise
            return exit_code(error)
        return 0

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self.requeued = True
        again = TrainJob(self.argv, self.cwd, self.threads, self.group)
        return submitit.helpers.DelayedSubmission(again)


@dataclass
class QueueJob:
    """What the queue's own submitit job runs (``python -m gridlstm.queue submit=...``): the
    same queue command, less ``submit``, in the submitting checkout, so that the queue lives
    in an allocation until its deadline instead of on a login node."""

    argv: list[str]
    cwd: str

    def __call__(self) -> int:
        os.chdir(self.cwd)
        sys.argv = ["gridlstm.queue", *self.argv]
        try:  # as `python -m gridlstm.queue` runs it (the analysis layer is below commands)
            runpy.run_module("gridlstm.queue", run_name="__main__", alter_sys=True)
        except SystemExit as error:
            return exit_code(error)
        return 0


# The queue job's own resources: it runs no training (its jobs are jobs of their own), so no
# GPU and little memory; its time is the deadline plus a margin to table the results.
QUEUE_JOB = {"gpus_per_node": 0, "cpus_per_task": 2, "mem_gb": 8, "max_num_timeout": 0}
QUEUE_MARGIN_MIN = 20


def submit_queue(
    name: str, options: dict[str, Any], argv: list[str], minutes: float, runs: Path
) -> Any:
    """Submit the queue itself, run with ``argv`` less its ``submit`` options, as one job of
    launcher ``name`` (options over `QUEUE_JOB`, one ConfigError before anything is
    submitted); returns submitit's job."""
    conf = find_conf_dir()
    if conf is None:
        raise ConfigError("submit= needs conf/ (run from the checkout, or set GRIDLSTM_CONF)")
    argv = [a for a in argv if not a.startswith(("submit=", "submit."))]
    if name == LOCAL:
        raise ConfigError(
            "submit=local: the queue already runs here; submit=slurm (or another submitit "
            f"launcher: {', '.join(launcher_names(conf)[1:])}) submits it as a job"
        )
    if name not in launcher_names(conf):
        make_executor(name, {}, conf)  # the unknown launcher's one line
    ours = {**QUEUE_JOB, "timeout_min": int(minutes) + QUEUE_MARGIN_MIN}
    known = launcher_options(name, conf)
    ours = {k: v for k, v in ours.items() if k in known}  # what this launcher has of them
    executor = make_executor(name, {**ours, **options}, conf)
    assert isinstance(executor, Submitit)
    return executor.submit_call(QueueJob(argv, os.getcwd()), "gridlstm-queue", runs)


class SubmititHandle:
    def __init__(self, job: Any, cluster: str, log: Path) -> None:
        self.job, self.cluster, self.log = job, cluster, log

    def wait(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while not self.job.done():
            if time.monotonic() >= end:
                return None
            time.sleep(min(POLL_S, max(end - time.monotonic(), 0.01)))
        try:
            code = int(self.job.result())
        except Exception as error:
            code = 1
            with self.log.open("a") as log:
                log.write(f"[queue] submitit job {self.job.job_id} failed: {error}\n")
        self._copy_output()
        return code

    def _copy_output(self) -> None:
        """The job's stdout and stderr into ``<job>.log``, so that the log the queue names
        for a failed job is the one to read, whichever launcher ran it."""
        with self.log.open("a") as log:
            for path in (self.job.paths.stdout, self.job.paths.stderr):
                with contextlib.suppress(OSError):
                    log.write(Path(path).read_text(errors="replace"))

    def stop(self) -> None:
        if self.cluster == "slurm":
            subprocess.run(
                ["scancel", "--signal=TERM", str(self.job.job_id)], check=False, timeout=60
            )
        else:  # submitit's local controller passes SIGTERM on to the job's process
            process = getattr(self.job, "_process", None)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.job.cancel(check=False)


class Submitit:
    """Each job one submitit job (one Slurm job, or one local controller and process),
    with the launcher config's resources and the study's ``launcher`` options over them."""

    def __init__(self, name: str, cluster: str, options: dict[str, Any]) -> None:
        self.name, self.cluster, self.options = name, cluster, options

    def start(self, job: Job, threads: int) -> SubmititHandle:
        import submitit

        folder = job.run_dir.parent / ".submitit" / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster, **self._init())
        executor.update_parameters(name=f"{job.study}/{job.name}", **self._resources())
        call = TrainJob(train_argv(job, threads), os.getcwd(), threads, job.study)
        with code.pinned_environment(job.snapshot):  # the job's process imports the snapshot
            submitted = executor.submit(call)
        with job.log.open("a") as log:
            log.write(
                f"$ python -m gridlstm.train {' '.join(call.argv)}\n"
                f"[queue] submitted as {self.cluster} job {submitted.job_id} "
                f"(launcher={self.name}); its files: {submitted.paths.folder}\n"
            )
        return SubmititHandle(submitted, self.cluster, job.log)

    def submit_call(self, call: Any, name: str, runs: Path) -> Any:
        """Any callable as one job (the queue's own: `submit_queue`), its files under
        ``<runs>/.submitit/<job id>``."""
        import submitit

        folder = runs / ".submitit" / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster, **self._init())
        executor.update_parameters(name=name, **self._resources())
        return executor.submit(call)

    def _init(self) -> dict[str, Any]:
        """As hydra-submitit-launcher builds its executor: max_num_timeout is an argument
        of the executor, the rest are parameters."""
        if "max_num_timeout" in self.options:
            return {f"{self.cluster}_max_num_timeout": self.options["max_num_timeout"]}
        return {}

    def _resources(self) -> dict[str, Any]:
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        return {
            key if key in generic else f"{self.cluster}_{key}": value
            for key, value in self.options.items()
            if key != "max_num_timeout"
        }

    def where(self) -> str:
        if self.cluster == "local":
            return f"submitit local (launcher={self.name}) on {device_name()}"
        partition = self.options.get("partition")
        return f"Slurm through submitit (launcher={self.name}" + (
            f", partition {partition})" if partition else ")"
        )


def launcher_names(conf: Path) -> list[str]:
    """``local`` and every launcher config built on submitit (the others, such as the
    joblib ``parallel``, run a sweep's jobs, not a study's)."""
    names = [LOCAL]
    for path in sorted((conf / "hydra" / "launcher").glob("*.yaml")):
        if base_of(path) in SUBMITIT_BASES:
            names.append("submitit_local" if path.stem == LOCAL else path.stem)
    return names


def base_of(path: Path) -> str | None:
    """The Hydra launcher config a launcher config is built on (its defaults list)."""
    from omegaconf import OmegaConf

    with contextlib.suppress(Exception):
        defaults = OmegaConf.to_container(OmegaConf.load(path)).get("defaults") or []
        return next((str(d) for d in defaults if isinstance(d, str)), None)
    return None


def config_file(name: str, conf: Path) -> Path:
    """``submitit_local`` is ``conf/hydra/launcher/local.yaml`` (``local`` is the queue's own
    processes); any other name is its file."""
    return conf / "hydra" / "launcher" / f"{LOCAL if name == 'submitit_local' else name}.yaml"


def make_executor(name: str, study_options: dict[str, Any], conf: Path) -> Executor:
    """The executor ``launcher=name`` names, with a study's ``launcher`` options over the
    launcher config's: one ConfigError (unknown launcher, missing plugin, unknown option)
    before anything is submitted."""
    if name == LOCAL:
        return Processes()
    choices = launcher_names(conf)
    if name not in choices:
        raise ConfigError(f"launcher={name}: unknown; choices: {', '.join(choices)}")
    from gridlstm.run.sweeps import missing_plugin

    if problem := missing_plugin([f"hydra/launcher={base_of(config_file(name, conf))}"]):
        raise ConfigError(problem.replace("hydra/launcher=", "launcher=", 1))
    options = launcher_options(name, conf)
    unknown = sorted(set(study_options) - set(options))
    if unknown:
        raise ConfigError(
            f"launcher option {', '.join(map(str, unknown))} is not an option of "
            f"launcher={name}; options: {', '.join(sorted(options))}"
        )
    cluster = SUBMITIT_BASES[str(base_of(config_file(name, conf)))]
    if cluster == "slurm" and (missing := no_slurm()):
        raise ConfigError(
            f"launcher={name}: no Slurm on this machine ({missing} not found); run the queue "
            "on the cluster's login node or in a job of its own, or launcher=submitit_local "
            "to try the Slurm code path here"
        )
    return Submitit(name, cluster, {**options, **study_options})


def no_slurm() -> str | None:
    """The first Slurm command submitit needs that is not on PATH (None: Slurm is here)."""
    import shutil

    return next((c for c in ("srun", "sbatch") if shutil.which(c) is None), None)


def launcher_options(name: str, conf: Path) -> dict[str, Any]:
    """The launcher config's options as Hydra composes them (the plugin's defaults under the
    file's values), less those the queue sets itself."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    launcher = config_file(name, conf).stem
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    options = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    kept = {k: v for k, v in options.items() if k not in QUEUE_OWNED}
    return OmegaConf.to_container(OmegaConf.create(kept), resolve=True)


Executor = Processes | Submitit
Handle = ProcessHandle | SubmititHandle

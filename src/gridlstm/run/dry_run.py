"""``dry_run=true``: what a run or a sweep would do, checked before anything is written.

Why: a sweep sent to a cluster should not find its fifth job's typo an hour in, nor refuse a
directory after the first four jobs ran. Hydra's ``--cfg job`` only prints a config: it skips
this suite's checks and creates the run directory. The dry run composes each job as Hydra
would (``-m`` expands the command line's sweep with Hydra's own basic sweeper), then runs the
checks the real run makes before its first output (`gridlstm.run.training.prepare`: config
checks, model x task, the data, the width a parameter budget solves, refuse / resume / start
for the job's directory) and prints one line per job. It creates no directory and writes no
file (data that would be downloaded is reported, not fetched). Exit 0, or 2 when any job
would be refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from gridlstm.run.errors import ConfigError

MULTIRUN_FLAGS = ("-m", "--multirun")
SWITCH = "dry_run"


def requested(argv: list[str]) -> bool | str:
    """True when the command line asks for a dry run; a message for a value that is neither
    true nor false; False otherwise."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == SWITCH:
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            return f"{SWITCH}={value}: choose true or false"
    return False


@dataclass
class Plan:
    """One job's outcome: ``start``, ``resume``, ``done`` (completed earlier) or ``refuse``."""

    overrides: list[str]
    outcome: str
    detail: str

    def line(self, number: int) -> str:
        shown = " ".join(o for o in self.overrides if o.partition("=")[0] != SWITCH)
        return f"job {number} [{shown or 'defaults'}]: {self.outcome} {self.detail}".rstrip()


def expand(argv: list[str], conf: Path) -> list[list[str]]:
    """The overrides of each job, in the order Hydra's basic sweeper runs them: the config's
    own sweep (``hydra.sweeper.params``, as a preset such as ``experiment=addition_cpu`` sets
    it, read from the config composed without the command line's sweeps) first, the command
    line's after it and winning for a key both name."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gridlstm.run.config import compose_problem

    parser = OverridesParser.create()
    fixed = [o.input_line or "" for o in parser.parse_overrides(argv) if not o.is_sweep_override()]
    params: dict = {}
    if compose_problem(fixed, conf) is None:  # else each job names its own problem
        cfg = compose_job(conf, fixed)
        sweep = cfg.hydra.sweeper.get("params")
        if sweep and note_for_sweeper(cfg) is None:  # the basic sweeper's, not a search space
            params = OmegaConf.to_container(sweep)
    lines = [f"{key}={value}" for key, value in params.items()] + argv
    parsed = parser.parse_overrides(lines)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def compose_job(conf: Path, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="train"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def place(cfg: DictConfig, multirun: bool, number: int, sweep_dir: str | None) -> Path:
    """Give the composed job the Hydra state a launched job has (mode, number, directory),
    so that every check reads what it reads under Hydra; returns the job's directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    with open_dict(cfg):
        cfg[SWITCH] = False  # the job as the real run would see it
        cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        cfg.hydra.job.num = number
        if multirun:
            cfg.hydra.sweep.dir = sweep_dir or str(cfg.hydra.sweep.dir)
            output_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        else:
            output_dir = Path(str(cfg.hydra.run.dir))
        cfg.hydra.runtime.output_dir = str(output_dir.absolute())
        cfg.hydra.runtime.cwd = str(Path.cwd())
    HydraConfig.instance().set_config(cfg)
    return output_dir


def without_download(cfg: DictConfig) -> bool:
    """Turn a data download into a report: True when the task would fetch missing data."""
    datamodule = cfg.task.get("datamodule") or {}
    if datamodule.get("download") is not True:
        return False
    with open_dict(cfg):
        cfg.task.datamodule.download = False
    return True


def plan_job(cfg: DictConfig, overrides: list[str], output_dir: Path) -> Plan:
    from gridlstm.run import checkpoints, runs
    from gridlstm.run.config import check_writable
    from gridlstm.run.training import prepare

    downloads = without_download(cfg)
    try:
        check_writable(output_dir, runs.directory_option())  # the real run creates it
        prepared = prepare(cfg)
    except ConfigError as error:
        if downloads and "download=false" in str(error):
            return Plan(
                overrides,
                "start",
                f"in {output_dir}; downloads task={cfg.task.name}'s "
                "data first (task.datamodule.download=true)",
            )
        return Plan(overrides, "refuse:", str(error))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Plan(overrides, "refuse:", f"{type(error).__name__}: {first}")
    if prepared.finished is not None:
        return Plan(overrides, "done", f"({output_dir} holds a completed run; nothing to do)")
    module = prepared.module
    width = getattr(module, "extra_metrics", {}).get("hidden", cfg.model.net.get("hidden_size"))
    model = f"model={cfg.model.name} hidden_size={width}, {module.num_parameters:,} parameters"
    if prepared.resume is None:
        return Plan(overrides, "start", f"in {output_dir}; {model}")
    step = checkpoints.read(prepared.resume).get("global_step", "?")
    return Plan(overrides, "resume", f"from step {step} ({prepared.resume}); {model}")


def note_for_sweeper(cfg: DictConfig) -> str | None:
    target = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="") or "")
    if "BasicSweeper" in target or not target:
        return None
    return (
        f"note: the sweeper ({target.rsplit('.', 1)[-1]}) chooses its trials as it runs; "
        "the jobs above are the command line's own sweep, checked at the config's values"
    )


def run(argv: list[str], conf: Path) -> int:
    """Plan every job, print one line each and a count; 2 when any job would be refused."""
    multirun = any(arg in MULTIRUN_FLAGS for arg in argv)
    overrides = [arg for arg in argv if arg not in MULTIRUN_FLAGS]
    if flags := [arg for arg in overrides if arg.startswith("-")]:
        print(
            f"error: {SWITCH}=true checks jobs; it does not combine with {flags[0]}",
            file=sys.stderr,
        )
        return 2
    from gridlstm.run.config import compose_problem
    from gridlstm.run.console import quiet_third_party

    quiet_third_party()
    try:
        jobs = expand(overrides, conf) if multirun else [overrides]
    except Exception as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    plans, notes, sweep_dir = [], [], None
    for number, job in enumerate(jobs):
        if problem := compose_problem(job, conf):
            plans.append(Plan(job, "refuse:", problem))
            continue
        cfg = compose_job(conf, job)
        if number == 0 and (note := note_for_sweeper(cfg)) and multirun:
            notes.append(note)
        output_dir = place(cfg, multirun, number, sweep_dir)
        sweep_dir = sweep_dir or (str(cfg.hydra.sweep.dir) if multirun else None)
        plans.append(plan_job(cfg, job, output_dir))
    for number, plan in enumerate(plans):
        print(f"dry run: {plan.line(number)}", flush=True)
    for note in notes:
        print(note)
    counts = summary(plans)
    refused = sum(plan.outcome == "refuse:" for plan in plans)
    print(f"dry run: {len(plans)} job{'s' * (len(plans) != 1)}: {counts}; nothing was written")
    return 2 if refused else 0


def summary(plans: list[Plan]) -> str:
    words = {
        "start": "would start",
        "resume": "would resume",
        "done": "completed earlier",
        "refuse:": "would be refused",
    }
    counted: dict[str, int] = {}
    for plan in plans:
        counted[words[plan.outcome]] = counted.get(words[plan.outcome], 0) + 1
    return ", ".join(f"{n} {what}" for what, n in counted.items())


def main(argv: list[str], conf: Path) -> Any:
    raise SystemExit(run(argv, conf))

"""Run the claims studies' jobs side by side under one wall-clock deadline, resumably.

    python -m gridlstm.queue study=paper_regime [only=equal_samples] [minutes=40] [jobs=16]
    python -m gridlstm.queue studies=scripts/gpu_studies.yaml [only=parity_paper]
        [dry_run=true] [runs=multirun/gpu_studies]
        [results=multirun/studies] [tag=auto|cpu|gpu|...] [launcher=local|slurm|submitit_local]
        [launcher.partition=gpu launcher.timeout_min=240 ...] [submit=slurm submit.partition=cpu]
        [code=pinned|head|<commit>|checkout] [allow_dirty=true]

Every job of a stage runs one commit, from a snapshot under ``<runs>/.code/``
(`gridlstm.analysis.studies.pins`): editing or switching branches while jobs run or wait
changes nothing they run. ``submit=slurm`` submits the queue itself as one Slurm job (no GPU,
2 CPUs, the deadline plus 20 minutes; ``submit.<option>=`` over those), which runs the queue
in an allocation, not on a login node, and submits its jobs from there as ``launcher`` says.

Results go outside docs/ unless ``results=docs/claims`` publishes them beside the page;
``tag=auto`` names their folder by where the jobs ran (``gpu``, ``cpu``, a launcher's name).
The stages' format and what the queue writes: `gridlstm.analysis.studies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gridlstm.analysis.studies.spec import declared_study
from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError
from gridlstm.run.provenance import results_tag


@dataclass
class QueueConfig:
    study: str = option("", "a declared study (docs/claims/<study>/study.yaml): its stages")
    studies: str = option("", "a machine profile or studies file, e.g. scripts/gpu_studies.yaml")
    minutes: float = option(40.0, "wall-clock deadline for the whole queue")
    jobs: int = option(16, "jobs side by side")
    dry_run: bool = option(False, "a few steps of every job at tiny sizes, on the CPU")
    only: str = option("", "comma-separated stages (default: all), e.g. frontier,seeds")
    runs: str = option("multirun/gpu_studies", "run directories: <runs>/<study>/<job>")
    results: str = option("multirun/studies", "tables: <results>/<claim>/<tag>/ (docs/claims)")
    threads: int = option(1, "CPU threads per job")
    tag: str = option("auto", "results sub-folder <results>/<claim>/<tag>/: auto, cpu, gpu, ...")
    launcher: str = option(
        "local",
        "where jobs run: local (this machine's processes), slurm or submitit_local "
        "(submitit, conf/hydra/launcher), or another submitit launcher config",
    )
    submit: str = option(
        "", "submit this queue itself as a job of this launcher (slurm, submitit_local)"
    )
    code: str = option(
        "pinned",
        "which code the jobs run: pinned (the stage's pinned commit; HEAD for a new stage), "
        "head, a commit, or checkout (the checkout as it is; not for results in docs/)",
    )
    allow_dirty: bool = option(
        False, "publish (results= in docs/) with uncommitted source changes (recorded)"
    )


# launcher.partition=gpu: a cluster launcher's option; submit.partition=cpu: the queue job's
LAUNCHER_OPTION, SUBMIT_OPTION = "launcher.", "submit."


def parse(argv: list[str]) -> tuple[QueueConfig, dict[str, object], dict[str, object]]:
    """The queue's options, the cluster launcher's (``launcher.<option>=value``, as Hydra's
    ``hydra.launcher.<option>``: they win over a study's ``launcher:`` mapping) and the queue
    job's own (``submit.<option>=value``)."""
    cfg, extras = arguments.parse(
        argv,
        QueueConfig,
        extra=lambda key: key.startswith((LAUNCHER_OPTION, SUBMIT_OPTION)),
        extra_help="launcher.<option>= (e.g. launcher.partition=gpu), submit.<option>=",
    )
    options = arguments.prefixed(extras, LAUNCHER_OPTION)
    submit_options = arguments.prefixed(extras, SUBMIT_OPTION)
    if options and cfg.launcher == "local":
        raise ConfigError(
            f"{LAUNCHER_OPTION}{next(iter(options))}: an option of a cluster launcher; give "
            "launcher=slurm (or another submitit launcher), or leave it out"
        )
    if submit_options and not cfg.submit:
        raise ConfigError(
            f"{SUBMIT_OPTION}{next(iter(submit_options))}: an option of the queue's own job; "
            "give submit=slurm, or leave it out"
        )
    if bool(cfg.study) == bool(cfg.studies):
        raise ConfigError(
            "give study=<a declared study> (e.g. study=paper_regime) or studies=<a profile> "
            "(e.g. studies=scripts/gpu_studies.yaml), one of the two"
        )
    if cfg.study:
        cfg.studies, cfg.only = declared_study(cfg.study, cfg.only)
    arguments.positive(cfg, "jobs", "threads", "minutes")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.tag):
        raise ConfigError(f"tag={cfg.tag!r}: a folder name (letters, digits, _ . -)")
    cfg.tag = results_tag(cfg.launcher) if cfg.tag == "auto" else cfg.tag
    return cfg, options, submit_options


def run(argv: list[str]) -> None:
    from gridlstm.analysis.studies import run_studies

    cfg, options, submit_options = parse(argv)
    if cfg.submit:
        return submit(cfg, submit_options, argv)
    failed = run_studies(
        Path(cfg.studies),
        minutes=cfg.minutes,
        jobs=cfg.jobs,
        threads=cfg.threads,
        only=[s for s in cfg.only.split(",") if s],
        runs=Path(cfg.runs),
        results=Path(cfg.results),
        tag=cfg.tag,
        dry_run=cfg.dry_run,
        launcher=cfg.launcher,
        launcher_options=options,
        code=cfg.code,
        allow_dirty=cfg.allow_dirty,
    )
    if failed:
        raise SystemExit(1)


def submit(cfg: QueueConfig, options: dict[str, object], argv: list[str]) -> None:
    """The queue as one job of launcher ``cfg.submit`` (its studies read and checked first,
    so that a typo is refused here, not in the allocation)."""
    from gridlstm.analysis.studies import load_studies
    from gridlstm.analysis.studies.executors import submit_queue

    load_studies(Path(cfg.studies))
    job = submit_queue(cfg.submit, options, argv, cfg.minutes, Path(cfg.runs))
    print(
        f"[queue] submitted as {cfg.submit} job {job.job_id}: it runs the queue until its "
        f"deadline ({cfg.minutes:g} min); its output: {job.paths.stdout}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, QueueConfig, run)


if __name__ == "__main__":
    main()

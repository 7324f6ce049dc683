"""Run the claims studies' jobs side by side under one wall-clock deadline, resumably.

    python -m gridlstm.queue studies=scripts/gpu_studies.yaml [minutes=40] [jobs=16]
        [dry_run=true] [only=addition15,parity] [runs=multirun/gpu_studies]
        [results=multirun/studies] [tag=auto|cpu|gpu|...] [launcher=local|slurm|submitit_local]
        [launcher.partition=gpu launcher.timeout_min=240 ...]

Results go outside docs/ by default, as sweeps do: publishing a study's records beside its
page is an explicit step, ``results=docs/claims`` (a queue run never rewrites a committed
record unless told to). ``tag=auto`` names the folder by where the jobs ran: ``gpu`` or
``cpu`` on this machine (by its CUDA device), the launcher's name on a cluster.

The studies file's format and what the queue writes: `gridlstm.analysis.studies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError


@dataclass
class QueueConfig:
    studies: str = option("", "the studies file (YAML), e.g. scripts/gpu_studies.yaml")
    minutes: float = option(40.0, "wall-clock deadline for the whole queue")
    jobs: int = option(16, "jobs side by side")
    dry_run: bool = option(False, "a few steps of every job at tiny sizes, on the CPU")
    only: str = option("", "comma-separated study names (default: all)")
    runs: str = option("multirun/gpu_studies", "run directories: <runs>/<study>/<job>")
    results: str = option(
        "multirun/studies", "tables go to <results>/<claim>/<tag>/ (docs/claims: publish)"
    )
    threads: int = option(1, "CPU threads per job")
    tag: str = option("auto", "results sub-folder <results>/<claim>/<tag>/: auto, cpu, gpu, ...")
    launcher: str = option(
        "local",
        "where jobs run: local (this machine's processes), slurm or submitit_local "
        "(submitit, conf/hydra/launcher), or another submitit launcher config",
    )


LAUNCHER_OPTION = "launcher."  # launcher.partition=gpu: a cluster launcher's option


def parse(argv: list[str]) -> QueueConfig:
    cfg, _ = parse_with_options(argv)
    return cfg


def parse_with_options(argv: list[str]) -> tuple[QueueConfig, dict[str, object]]:
    """The queue's options and the cluster launcher's (``launcher.<option>=value``, as
    Hydra's ``hydra.launcher.<option>``: they win over a study's ``launcher:`` mapping)."""
    import yaml

    cfg, extras = arguments.parse(
        argv,
        QueueConfig,
        extra=lambda key: key.startswith(LAUNCHER_OPTION),
        extra_help="launcher.<option>= (e.g. launcher.partition=gpu)",
    )
    options = {}
    for arg in extras:
        key, _, value = arg.partition("=")
        options[key[len(LAUNCHER_OPTION) :]] = yaml.safe_load(value) if value else value
    if options and cfg.launcher == "local":
        raise ConfigError(
            f"{extras[0].partition('=')[0]}: an option of a cluster launcher; give "
            "launcher=slurm (or another submitit launcher), or leave it out"
        )
    if not cfg.studies:
        raise ConfigError("no studies file given: studies=scripts/gpu_studies.yaml")
    for key in ("jobs", "threads"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}={getattr(cfg, key)}: must be positive")
    if cfg.minutes <= 0:
        raise ConfigError(f"minutes={cfg.minutes}: must be positive")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.tag):
        raise ConfigError(f"tag={cfg.tag!r}: a folder name (letters, digits, _ . -)")
    if cfg.tag == "auto":
        cfg.tag = device_tag(cfg.launcher)
    return cfg, options


def device_tag(launcher: str) -> str:
    """The results folder's name for where the jobs run: this machine's kind (``gpu`` where
    it has a CUDA device, else ``cpu``), or the cluster launcher's name (the jobs run on its
    nodes, not here). Why: a CPU run's records under ``gpu/`` misstate their machine."""
    if launcher != "local":
        return re.sub(r"[^A-Za-z0-9_.-]", "_", launcher)
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def run(argv: list[str]) -> None:
    from gridlstm.analysis.studies import run_studies

    cfg, options = parse_with_options(argv)
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
    )
    if failed:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, QueueConfig, run)


if __name__ == "__main__":
    main()

"""What the running Hydra app knows, and the suite's OmegaConf resolvers: one home.

Why one module: Hydra's global state (`HydraConfig`) is read for the run mode, the launcher,
the sweeper, the job's number and names and the config directory; the rest of the suite asks
here instead of reading it, so running without Hydra (evaluate, tests) has one place to
answer "not under Hydra". The resolvers (``gridlstm_run_id``) are registered by every command
that composes or reads a config.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def shared_run_id() -> str | None:
    """The id an external multi-process launcher gives all its ranks, if any."""
    if os.environ.get("GRIDLSTM_RUN_ID"):
        return os.environ["GRIDLSTM_RUN_ID"]
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("SLURM_STEP_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ['SLURM_STEP_ID']}"
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return f"torchrun-{run_id}"
    return None


def run_id() -> str:
    """Directory name of a run or sweep: shared across externally launched ranks, else
    ``YYYY-MM-DD/HH-MM-SS_<random>`` (unique even for launches in the same second)."""
    shared = shared_run_id()
    if shared:
        return shared
    return f"{datetime.now():%Y-%m-%d/%H-%M-%S}_{secrets.token_hex(3)}"


def register_resolvers() -> None:
    # use_cache: Hydra copies the resolver cache into every job of a sweep, so all jobs of
    # one multirun see the same id.
    if not OmegaConf.has_resolver("gridlstm_run_id"):
        OmegaConf.register_new_resolver("gridlstm_run_id", run_id, use_cache=True)


def current() -> Any | None:
    """The running app's ``hydra`` config node, or None outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    from hydra.types import RunMode

    hydra_cfg = current()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def launcher() -> Any | None:
    """The launcher's config (None outside Hydra)."""
    hydra_cfg = current()
    return None if hydra_cfg is None else hydra_cfg.launcher


def submits_to_cluster() -> bool:
    """True where this process only prepares jobs that a cluster launcher (submitit's Slurm
    launcher) runs on other machines, as a dry run on a login node does; False inside a
    Slurm allocation, where the job itself runs and can see its GPUs."""
    target = str((launcher() or {}).get("_target_", ""))
    return target.endswith("SlurmLauncher") and not os.environ.get("SLURM_JOB_ID")


def sweeper() -> Any | None:
    """The sweeper's config (None outside Hydra)."""
    hydra_cfg = current()
    return None if hydra_cfg is None else hydra_cfg.sweeper


def job_number() -> int:
    """This job's number in its sweep (0 for a single run or outside Hydra)."""
    hydra_cfg = current()
    return 0 if hydra_cfg is None else int(hydra_cfg.job.get("num", 0) or 0)


def job_names() -> tuple[str | None, str]:
    """(group, name) for W&B: the sweep groups its jobs, each job is named by its overrides."""
    from hydra.types import RunMode

    hydra_cfg = current()
    if hydra_cfg is None:
        return None, "run"
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = os.path.relpath(hydra_cfg.sweep.dir, hydra_cfg.runtime.cwd)
        return sweep, f"{hydra_cfg.job.num}:{hydra_cfg.job.override_dirname or 'defaults'}"
    return None, os.path.relpath(hydra_cfg.runtime.output_dir, hydra_cfg.runtime.cwd)


def config_dir() -> Path | None:
    """The primary config directory of the running Hydra app (the repo's ``conf/``)."""
    hydra_cfg = current()
    if hydra_cfg is None:
        return None
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    return None

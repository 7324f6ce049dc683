"""What the queue checks before any job starts: every job's config composes, and each
synthetic task's data can be built at the size the study will run.

Why the second check: a dry run swaps in tiny sizes (a few steps, 16 held-out problems), so
a full-size job that its task refuses at start (parity at k = 8 has 256 distinct strings,
too few for 500 validation and 500 test strings) passes the dry run and fails only when the
real queue reaches it. A synthetic task's data module is cheap to build (its problems are
drawn later, in ``setup``); file-backed tasks (enwik8, MNIST, translation) read or download
their data when built, so they are left to ``missing_data`` and to the job itself.
"""

from __future__ import annotations

from pathlib import Path

from gridlstm.analysis.studies.spec import Job
from gridlstm.run.errors import ConfigError


def conf_dir() -> Path:
    from gridlstm.run.conf import find_conf_dir

    conf = find_conf_dir()
    if conf is None:
        raise ConfigError("no conf/train.yaml found: run from the repository root")
    return conf


def check_jobs(
    jobs: list[Job], full_size: list[Job] | None = None, conf: Path | None = None
) -> None:
    """Compose every job's config, and build each synthetic task's data module at full size
    (``full_size``: the same jobs without a dry run's tiny overrides; default ``jobs``). A
    problem is one ConfigError naming the job, not a failure found after the GPU's time has
    been spent. ``conf``: the configs the jobs compose from (their snapshot's)."""
    from gridlstm.run.config import compose_problem
    from gridlstm.run.hydra_runtime import register_resolvers

    conf = conf or conf_dir()
    register_resolvers()
    for job in jobs:
        if problem := compose_problem(job.overrides, conf):
            raise ConfigError(f"{job.study}/{job.name}: {problem}")
    for job in full_size if full_size is not None else jobs:
        if problem := synthetic_data_problem(job.overrides, conf):
            raise ConfigError(f"{job.study}/{job.name}: {problem}")


def synthetic_data_problem(overrides: list[str], conf: Path) -> str | None:
    """Why the job's synthetic task refuses its sizes (one line), or None; None for tasks
    whose data module is not synthetic."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    from gridlstm.data.synthetic import SyntheticDataModule
    from gridlstm.run.build import build_datamodule, guarded

    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="train"):
        cfg = compose("train", overrides=overrides)
    target = cfg.task.datamodule.get("_target_")
    if not target or not issubclass(get_class(target), SyntheticDataModule):
        return None
    try:
        guarded(f"task={cfg.task.name}", lambda: build_datamodule(cfg.task))
    except ConfigError as error:
        return str(error)
    return None

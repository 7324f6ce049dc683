"""Run directories and multi-process launching under Hydra.

Two problems this module solves:

* **Unique run directories.** ``${now:...}`` alone collides for two launches in the same
  second. The ``gridlstm_run_id`` resolver (`gridlstm.run.hydra_runtime.run_id`) adds a
  random suffix, except when several processes were started together by an external launcher
  (``srun``, ``torchrun``): then every rank must name the *same* directory, so the id comes
  from the launcher (``GRIDLSTM_RUN_ID``, SLURM's job and step ids, or torchrun's rendezvous
  id).

* **DDP under a Hydra multirun.** Lightning's ``ddp`` strategy re-launches ``sys.argv`` for
  ranks > 0; under ``-m`` every child would re-run the whole sweep. `HydraDDPStrategy`
  re-launches only the current job instead: the job's own overrides, in Hydra's RUN mode,
  into the job's output directory. After each job the parent's process group and the DDP
  environment variables are cleared (`job_environment`) so the next job of the sweep launches
  its own fresh children.

  On many nodes processes are started externally, one per GPU, each running the same
  ``python train.py -m ...``. Every rank then steps through the same sweep in the same order
  and trains each job together with the others, in a sweep directory they agree on (the
  shared run id above). Nothing is re-launched.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from gridlstm.run import hydra_runtime

CHILD_ENV = "GRIDLSTM_DDP_CHILD"
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def externally_launched() -> bool:
    """True in a rank started by srun/torchrun with other ranks (not by our own launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get(CHILD_ENV) != "1"


def hydra_job_command(local_rank: int) -> tuple[list[str], str]:
    """The command that re-runs only the current Hydra job, for DDP rank ``local_rank``."""
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra_cfg = hydra_runtime.current()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    # Keep how the primary config was chosen; drop -m/--multirun and the sweep itself.
    config_flags = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg in config_flags and i + 1 < len(argv):
            command += [arg, argv[i + 1]]
        elif arg.startswith(tuple(f"{flag}=" for flag in config_flags)):
            command.append(arg)
    command += list(hydra_cfg.overrides.task)
    command += [
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
        "hydra.mode=RUN",
    ]
    return command, get_original_cwd()


class _HydraJobLauncher(_SubprocessScriptLauncher):
    """Lightning's script launcher, re-running the current Hydra job instead of sys.argv."""

    def _call_children_scripts(self) -> None:
        if hydra_runtime.current() is None:
            return super()._call_children_scripts()
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            env = {**os.environ, "LOCAL_RANK": str(local_rank), CHILD_ENV: "1"}
            command, cwd = hydra_job_command(local_rank)
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))


class HydraDDPStrategy(DDPStrategy):
    """``ddp`` that is safe under ``python train.py -m``: each job trains exactly once.

    Identical to Lightning's ``ddp`` when processes are created externally (srun,
    torchrun) or when Hydra is not in use.
    """

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = _HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes
            )


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextmanager
def job_environment() -> Iterator[None]:
    """Give each job of a sweep a clean distributed environment.

    A job whose DDP children we launched leaves ``LOCAL_RANK`` etc. in ``os.environ`` and an
    initialised process group; the next job would then believe its processes already exist
    and wait forever. Ranks started externally keep their group for the next job.
    """
    before = {key: os.environ.get(key) for key in _DDP_ENV}
    owns_launch = not externally_launched() and os.environ.get(CHILD_ENV) != "1"
    if externally_launched():
        # The group outlives the jobs; left to interpreter shutdown, gloo's threads can
        # abort the process ("terminate called without an active exception").
        atexit.unregister(_destroy_process_group)  # once, however many jobs
        atexit.register(_destroy_process_group)
    try:
        yield
    finally:
        if owns_launch:
            _destroy_process_group()
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

"""Hydra's launcher and sweeper plugins as this suite uses them.

* The plugins are an extra (``pip install -e ".[cluster]"``): a command that names one
  that is not installed gets one line saying which extra to install, before Hydra starts.
* Jobs that a local launcher runs side by side divide the machine: the CPU threads of each
  job (``hardware.threads=auto``) and, with one GPU per job, which GPU.
* An Optuna search must optimise the task's main metric in its direction.
* A sweep ends with one line counting its jobs by status, listing the failed ones, and a
  non-zero exit code when any failed (`SweepReport`, a Hydra callback). A job refused because
  its directory holds an earlier result counts as failed: its refusal is recorded beside the
  job directories (`REFUSED`), never in the directory it refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from gridlstm.run import runs

REFUSED = "refused_jobs.jsonl"  # in the sweep directory: one {"job", "reason"} per line

# Command-line choices -> (the plugin's module, its pip package).
PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "parallel": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper"),
}


def missing_plugin(argv: list[str]) -> str | None:
    """A one-line message if ``argv`` selects a launcher/sweeper plugin that is not installed."""
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key in ("hydra/launcher", "hydra/sweeper"):
            choice = value
        elif key == "hparams_search" and value:
            choice = "optuna"  # every hparams_search config uses the Optuna sweeper
        else:
            continue
        if choice not in PLUGINS:
            continue
        module, package = PLUGINS[choice]
        if importlib.util.find_spec(module) is None:
            return (
                f"{arg} needs the {package} plugin, which is not installed: "
                'pip install -e ".[cluster]" (or pip install ' + package + ")"
            )
    return None


def parallel_jobs(launcher: Any) -> int:
    """Jobs a local launcher runs at once (1 for sequential and cluster launchers)."""
    if launcher is None or not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    if n_jobs < 0:  # joblib: -1 is one per CPU, -2 all but one, ...
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, n_jobs)


def gpu_for_job(job_num: int, gpus: int) -> list[int]:
    """The one GPU job ``job_num`` of a parallel local sweep uses: round robin."""
    return [job_num % gpus]


def record_refusal(job_dir: Path, reason: str) -> None:
    """Note, in the sweep directory, that the job in ``job_dir`` was refused and why."""
    line = json.dumps({"job": job_dir.name, "reason": reason})
    with (job_dir.parent / REFUSED).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def refusals(sweep: Path) -> dict[str, str]:
    path = sweep / REFUSED
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {entry["job"]: entry["reason"] for entry in entries}


class SweepReport(Callback):
    """After a sweep: how many jobs completed, diverged, were interrupted or failed (read
    from the jobs' ``metrics.json``), the failed ones with their reasons, and exit code 1
    when any job failed."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        """A new sweep starts without the refusals of an earlier one in the same directory."""
        (Path(str(config.hydra.sweep.dir)) / REFUSED).unlink(missing_ok=True)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        if not sweep.is_dir():
            return
        counts: Counter[str] = Counter()
        failed = []
        refused = refusals(sweep)
        jobs = (
            p for p in sweep.iterdir() if (p / ".hydra").is_dir() or (p / runs.RECORD).is_file()
        )
        for job in sorted(set(jobs) | {sweep / name for name in refused}):
            record = runs.read_record(job) or {}
            status = str(record.get("status", "no metrics.json"))
            if job.name in refused:
                status, record = "refused", {"reason": refused[job.name]}
            counts[status] += 1
            if status in (runs.FAILED, "refused"):
                failed.append(f"  job {job.name}: {record.get('reason', '')}")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"sweep {sweep}: {sum(counts.values())} jobs: {summary}", flush=True)
        if failed:
            print("\n".join(failed), flush=True)
            raise SystemExit(1)

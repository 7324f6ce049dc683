"""W&B from a cluster: the jobs of one study share a W&B group (W&B's own WANDB_RUN_GROUP, as
a sweep's jobs share the sweep's), locally and through submitit; a group the user set wins."""

from __future__ import annotations

import os
import runpy
import subprocess
from pathlib import Path

import pytest

from gridlstm.analysis.studies import executors
from gridlstm.analysis.studies.spec import Job


def job(tmp_path: Path) -> Job:
    return Job("paper_regime/equal_samples", "grid2d", ["seed=1"], tmp_path / "r", tmp_path / "l")


@pytest.mark.parametrize("set_by_user", [None, "my-group"])
def test_a_local_study_job_runs_in_the_studys_wandb_group(tmp_path, monkeypatch, set_by_user):
    seen = {}

    class Popen:
        def __init__(self, command, env, **kwargs):
            seen.update(env)

    if set_by_user:
        monkeypatch.setenv(executors.WANDB_GROUP, set_by_user)
    else:
        monkeypatch.delenv(executors.WANDB_GROUP, raising=False)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    executors.Processes().start(job(tmp_path), threads=1)
    assert seen[executors.WANDB_GROUP] == (set_by_user or "paper_regime/equal_samples")


def test_a_submitit_job_and_its_requeued_copy_run_in_the_studys_group(tmp_path, monkeypatch):
    seen = {}
    environment = {k: v for k, v in os.environ.items() if k != executors.WANDB_GROUP}
    monkeypatch.setattr(os, "environ", environment)  # the job changes its process's
    monkeypatch.setattr(os, "chdir", lambda _: None)
    monkeypatch.setattr(
        runpy,
        "run_module",
        lambda *a, **k: seen.update(os.environ),  # the job's train.py
    )
    call = executors.TrainJob(["seed=1"], str(tmp_path), 1, "paper_regime/equal_samples")
    assert call() == 0 and seen[executors.WANDB_GROUP] == "paper_regime/equal_samples"
    pytest.importorskip("submitit")
    assert call.checkpoint().function.group == "paper_regime/equal_samples"

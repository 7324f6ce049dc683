"""Run ids and the job-scoped DDP relaunch command (unit level)."""

from __future__ import annotations

import os
import re

import pytest

from gridlstm.run import hydra_runtime, launch
from gridlstm.run.config import check_launch
from gridlstm.run.errors import ConfigError

LAUNCH_VARS = (
    "GRIDLSTM_RUN_ID",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "TORCHELASTIC_RUN_ID",
    "WORLD_SIZE",
    "LOCAL_RANK",
    launch.CHILD_ENV,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in LAUNCH_VARS:
        monkeypatch.delenv(key, raising=False)


def test_run_ids_are_unique_within_one_second():
    ids = {hydra_runtime.run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d_[0-9a-f]{6}", i) for i in ids)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GRIDLSTM_RUN_ID": "ablation-3"}, "ablation-3"),
        ({"SLURM_JOB_ID": "991", "SLURM_STEP_ID": "2"}, "slurm-991.2"),
        ({"TORCHELASTIC_RUN_ID": "abc"}, "torchrun-abc"),
    ],
)
def test_externally_launched_ranks_share_the_launchers_id(monkeypatch, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert hydra_runtime.run_id() == hydra_runtime.run_id() == expected


def test_slurm_batch_script_without_a_step_is_not_shared(monkeypatch):
    """Two runs in one sbatch script must not share (and overwrite) one directory."""
    monkeypatch.setenv("SLURM_JOB_ID", "991")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert hydra_runtime.shared_run_id() is None


def test_external_launch_without_a_shared_id_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="share no run id"):
        check_launch()
    monkeypatch.setenv("GRIDLSTM_RUN_ID", "x")
    check_launch()


def test_our_own_ddp_children_are_not_external(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(launch.CHILD_ENV, "1")
    assert not launch.externally_launched()
    check_launch()


def test_job_environment_restores_ddp_variables(monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "1234")
    with launch.job_environment():
        os.environ.update(LOCAL_RANK="0", WORLD_SIZE="2", MASTER_PORT="5555")
    assert "LOCAL_RANK" not in os.environ and "WORLD_SIZE" not in os.environ
    assert os.environ["MASTER_PORT"] == "1234"

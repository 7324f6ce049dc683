"""GPU jobs use the GPU: the paper presets ask for one, a Slurm sweep composes to GPU jobs on a
login node without one, and a CPU run on a machine with a visible GPU says so (the CUDA probe
patched both ways)."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from gridlstm.run import build
from gridlstm.run.config import check_hardware
from gridlstm.run.errors import ConfigError
from tests.conftest import CONF, TINY
from tests.test_configs import compose_train

PAPER = sorted(p.stem for p in (CONF / "experiment").glob("*_paper.yaml"))


def cuda_visible(monkeypatch, visible: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if visible else 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H100 80GB HBM3")


@pytest.mark.parametrize("visible", [True, False])
def test_a_cpu_run_says_in_one_line_when_a_gpu_is_visible(monkeypatch, visible):
    cuda_visible(monkeypatch, visible)
    cpu = OmegaConf.create({"name": "cpu", "accelerator": "cpu", "devices": 1})
    gpu = OmegaConf.create({"name": "gpu", "accelerator": "gpu", "devices": 1})
    line = build.unused_gpu(cpu)
    if visible:
        assert line == (
            "hardware=cpu: training on the CPU although 2 CUDA GPU(s) are visible "
            "(NVIDIA H100 80GB HBM3); hardware=gpu trains on one, hardware=ddp on all"
        )
    else:
        assert line is None
    assert build.unused_gpu(gpu) is None


def test_the_line_is_printed_when_a_cpu_run_starts(monkeypatch, tmp_path, caplog):
    from gridlstm.run import training

    monkeypatch.setattr(training, "unused_gpu", lambda hardware: f"seen {hardware.name}")
    cfg = compose_train([*TINY, "trainer.max_steps=1", "logger=none"], tmp_path)
    with caplog.at_level(logging.WARNING, logger="gridlstm.run.training"):
        training.train(cfg)
    assert "seen cpu" in caplog.messages


@pytest.mark.parametrize("preset", PAPER)
def test_every_paper_preset_runs_on_a_gpu_unless_told_otherwise(preset, tmp_path):
    assert compose_train([f"experiment={preset}"], tmp_path).hardware.name == "gpu"
    for choice in ("cpu", "ddp"):
        cfg = compose_train([f"experiment={preset}", f"hardware={choice}"], tmp_path)
        assert cfg.hardware.name == choice


def test_a_gpu_job_is_refused_on_a_machine_without_cuda_unless_a_cluster_runs_it(
    monkeypatch, tmp_path
):
    cuda_visible(monkeypatch, False)
    cfg = compose_train(["hardware=gpu"], tmp_path)
    with pytest.raises(ConfigError, match="no CUDA GPU is available on this machine"):
        check_hardware(cfg)
    monkeypatch.setattr(build.hydra_runtime, "submits_to_cluster", lambda: True)
    check_hardware(cfg)  # a login node submitting to Slurm: the node checks its own GPUs


@pytest.mark.parametrize(
    ("target", "job_id", "expected"),
    [
        ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", None, True),
        ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "77", False),
        ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", None, False),
        ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", None, False),
    ],
)
def test_only_the_submitting_side_of_a_slurm_sweep_leaves_the_cuda_check_to_the_node(
    monkeypatch, target, job_id, expected
):
    from gridlstm.run import hydra_runtime

    monkeypatch.setattr(hydra_runtime, "launcher", lambda: {"_target_": target})
    if job_id is None:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    else:
        monkeypatch.setenv("SLURM_JOB_ID", job_id)
    assert hydra_runtime.submits_to_cluster() is expected


def test_the_slurm_example_dry_runs_to_gpu_jobs_on_a_login_node(cli, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the case is a login node without one")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    job = ["experiment=mnist_paper", "model=cnn", "seed=1,2", "dry_run=true"]
    result = cli(*args, *job)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: 2 jobs: 2 would start" in result.stdout
    alone = cli(*[a for a in job if a != "seed=1,2"])  # no cluster: this machine must have it
    assert alone.returncode == 2
    assert "hardware=gpu: no CUDA GPU is available on this machine" in alone.stdout

"""Hydra's launcher and sweeper plugins: parallel local jobs, submitit (local), Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gridlstm.run import sweeps
from tests.conftest import TINY

ARGS = [*TINY, "logger=csv", "print_config=false"]
KILL = ["+callbacks.kill._target_=tests.signals.SignalAtStep", "+callbacks.kill.step=4"]


def statuses(sweep: Path) -> dict[str, str]:
    return {
        job.name: json.loads((job / "metrics.json").read_text())["status"]
        for job in sorted(sweep.iterdir())
        if (job / "metrics.json").is_file()
    }


# 20-23 s; sweeps on the basic launcher run in the default suite.
@pytest.mark.slow
def test_parallel_launcher_runs_each_job_once_in_its_own_process(cli):
    sweep = cli.cwd / "parallel"
    result = cli("-m", *ARGS, "hydra/launcher=parallel", f"hydra.sweep.dir={sweep}", "seed=1,2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses(sweep) == {"0": "completed", "1": "completed"}
    for job in ("0", "1"):
        log = (sweep / job / "train.log").read_text()
        assert log.count("model=grid2d:") == 1  # built once: trained once
        assert "CPU threads: 1" in log  # two jobs side by side share the 2 cores


@pytest.mark.slow  # 50 s; a SIGTERM'd run resuming stays in the default suite (test_resume.py)
def test_submitit_local_sweep_survives_sigterm_and_resumes(cli):
    sweep = cli.cwd / "submitit"
    common = [
        "-m",
        *ARGS,
        "trainer.max_steps=10",
        "hydra/launcher=local",
        f"hydra.sweep.dir={sweep}",
        "seed=1,2",
    ]
    first = cli(*common, *KILL)
    assert first.returncode != 0  # the jobs were stopped: the sweep says so
    assert statuses(sweep) == {"0": "interrupted", "1": "interrupted"}
    assert all((sweep / job / "checkpoints" / "last.ckpt").is_file() for job in ("0", "1"))
    second = cli(*common, "resume=auto")
    assert second.returncode == 0, second.stderr[-2000:]
    assert statuses(sweep) == {"0": "completed", "1": "completed"}
    for job in ("0", "1"):
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["global_step"] == 10 and record["samples_seen"] == 80


def test_optuna_search_of_three_trials(cli):
    sweep = cli.cwd / "optuna"
    result = cli(
        *ARGS,
        "hparams_search=addition_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses(sweep) == {"0": "completed", "1": "completed", "2": "completed"}
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    values = [json.loads((sweep / j / "metrics.json").read_text())["val/acc"] for j in "012"]
    assert best.best_value == pytest.approx(max(values))
    assert "optim.optimizer.lr" in best.best_params


def test_optuna_direction_must_match_the_task_metric(cli):
    result = cli(
        *ARGS,
        "hparams_search=addition_optuna",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.n_trials=1",
        f"hydra.sweep.dir={cli.cwd / 'wrong'}",
    )
    assert result.returncode == 2
    assert "set hydra.sweeper.direction=maximize" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_slurm_option_is_refused_before_anything_runs(cli):
    result = cli("-m", *ARGS, "hydra/launcher=slurm", "hydra.launcher.partitoin=gpu", "seed=1,2")
    assert result.returncode != 0
    assert "Key 'partitoin' not in 'SlurmQueueConf'" in result.stderr
    assert not (cli.cwd / "multirun").exists()


@pytest.mark.parametrize(
    ("argv", "package"),
    [
        (["-m", "hydra/launcher=parallel"], "hydra-joblib-launcher"),
        (["-m", "hydra/launcher=slurm"], "hydra-submitit-launcher"),
        (["hparams_search=mnist_optuna"], "hydra-optuna-sweeper"),
        (["-m", "hydra/sweeper=optuna"], "hydra-optuna-sweeper"),
    ],
)
def test_a_missing_plugin_names_the_extra(monkeypatch, argv, package):
    monkeypatch.setattr(sweeps.importlib.util, "find_spec", lambda name: None)
    message = sweeps.missing_plugin(argv)
    assert message is not None and package in message and '".[cluster]"' in message
    assert sweeps.missing_plugin(["-m", "seed=1,2"]) is None


def test_parallel_jobs_share_cores_and_gpus():
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    assert sweeps.parallel_jobs(OmegaConf.create({**joblib, "n_jobs": 3})) == 3
    assert sweeps.parallel_jobs(OmegaConf.create({**joblib, "n_jobs": -1})) >= 1
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert sweeps.parallel_jobs(OmegaConf.create(basic)) == 1
    assert [sweeps.gpu_for_job(job, 4) for job in range(6)] == [[0], [1], [2], [3], [0], [1]]


def test_a_requeued_slurm_job_resumes_automatically(monkeypatch):
    from gridlstm.run.training import requested_resume

    cfg = OmegaConf.create({"resume": False})
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requested_resume(cfg) == "false"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requested_resume(cfg) == "auto"


def test_a_sweep_survives_an_invalid_and_a_crashing_job(cli):
    """Jobs 0 and 1 have an invalid config, job 2 trains, job 3 crashes at step 2: the sweep
    runs them all, records why, counts them at the end and exits 1."""
    sweep = cli.cwd / "mixed"
    result = cli(
        "-m",
        *ARGS,
        f"hydra.sweep.dir={sweep}",
        "+callbacks.crash._target_=tests.signals.RaiseAtStep",
        "model.net.num_layers=0,2",
        "+callbacks.crash.step=100,2",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    records = {job: json.loads((sweep / job / "metrics.json").read_text()) for job in "0123"}
    invalid = {
        "status": "failed",
        "reason": "model=grid2d: num_layers must be an integer >= 1, got 0",
    }
    assert records["0"] == invalid and records["1"] == invalid
    assert records["2"]["status"] == "completed"
    assert records["3"]["status"] == "failed"
    assert records["3"]["reason"] == "RuntimeError: simulated crash at step 2"
    assert f"sweep {sweep}: 4 jobs: 1 completed, 3 failed" in result.stdout
    assert "job 0: model=grid2d: num_layers must be an integer >= 1, got 0" in result.stdout
    assert "simulated crash at step 2" in (sweep / "3" / "train.log").read_text()


@pytest.mark.slow  # the Optuna search itself stays in the default suite
def test_optuna_search_goes_on_when_trials_diverge(cli):
    """Diverged trials return the worst score (-inf when maximising): Optuna records them
    and the search finishes; the closing line counts them."""
    sweep = cli.cwd / "optuna_diverged"
    result = cli(
        *ARGS,
        "hparams_search=addition_optuna",
        "hydra.sweeper.n_trials=2",
        "model.net.num_layers=1",
        "model.net.hidden_size=8",
        "hydra.sweeper.params={optim.optimizer.lr:'choice(1000000.0)'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses(sweep) == {"0": "diverged", "1": "diverged"}
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == float("-inf")
    assert "2 jobs: 2 diverged" in result.stdout


def test_a_sweep_whose_jobs_are_refused_fails_and_spares_the_earlier_results(cli):
    """Run again into the same sweep directory without resume=auto: each job holds a completed
    run, so each is refused (naming hydra.sweep.dir, the option that chose it), the earlier
    results stay byte for byte, and the sweep exits 1 counting them refused."""
    sweep = cli.cwd / "again"
    first = cli("-m", *ARGS, f"hydra.sweep.dir={sweep}", "seed=1,2")
    assert first.returncode == 0, first.stderr[-2000:]
    stored = {p: p.read_bytes() for p in sorted(sweep.glob("[01]/**/*")) if p.is_file()}
    assert any(p.name == "overrides.yaml" for p in stored)
    second = cli("-m", *ARGS, "model=stacked_lstm", f"hydra.sweep.dir={sweep}", "seed=1,2")
    assert second.returncode == 1, second.stderr[-2000:]
    assert "choose another hydra.sweep.dir" in second.stderr
    assert f"sweep {sweep}: 2 jobs: 2 refused" in second.stdout
    assert {p: p.read_bytes() for p in stored} == stored
    # A later sweep that continues them (resume=auto, the same settings) is clean again.
    third = cli("-m", *ARGS, f"hydra.sweep.dir={sweep}", "seed=1,2", "resume=auto")
    assert third.returncode == 0 and "2 jobs: 2 completed" in third.stdout, third.stdout[-2000:]

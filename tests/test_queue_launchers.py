"""A study through submitit (`gridlstm.analysis.studies.executors`): real submitit local
jobs (its controller processes and state files) for the queue's promises, and a Slurm
submission checked by the sbatch script submitit writes for it."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from gridlstm.analysis.studies import runner as study_queue
from gridlstm.analysis.studies.executors import launcher_names, make_executor
from gridlstm.analysis.studies.spec import expand
from gridlstm.run.errors import ConfigError
from tests.conftest import offline_env
from tests.test_configs import CONF
from tests.test_queue import TINY_ADDITION, run_queue

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key, value in offline_env().items():
        monkeypatch.setenv(key, value)


def report(tmp_path: Path, claim: str = "s") -> dict:
    return json.loads((tmp_path / "results" / claim / "gpu" / "queue.json").read_text())


def test_a_study_runs_to_its_tables_through_submitit_local_a_refused_job_fails(tmp_path, capsys):
    """Two jobs side by side as submitit local jobs: one runs to the study's table, the
    other composes (the queue's own check passes) but train.py refuses it (exit 2)."""
    studies = {
        "s": {
            "claim": "s",
            "overrides": TINY_ADDITION,
            "cases": [{"trainer.max_steps": 4}, {"trainer.max_steps": 0}],
        }
    }
    assert run_queue(tmp_path, studies, "launcher=submitit_local", "jobs=2") == 1
    done = report(tmp_path)
    assert done["launcher"] == "submitit_local"
    assert done["device"].startswith("submitit local (launcher=submitit_local) on CPU")
    assert [(j["job"], j["status"], j["returncode"]) for j in done["jobs"]] == [
        ("max_steps4", "completed", 0),
        ("max_steps0", "failed", 2),
    ]
    table = (tmp_path / "results" / "s" / "gpu" / "table.md").read_text()
    assert "| max_steps4 | stacked_lstm |" in table and "max_steps0" not in table
    runs = tmp_path / "runs" / "s"
    for job in ("max_steps4", "max_steps0"):
        log = (runs / f"{job}.log").read_text()
        assert "submitted as local job" in log  # through submitit, not the queue's processes
    assert "run directory:" in (runs / "max_steps4.log").read_text()  # the job's own output
    assert "error: trainer.max_steps=0" in (runs / "max_steps0.log").read_text()
    assert len(list((runs / ".submitit").glob("*/*_result.pkl"))) == 2  # submitit's state
    printed = capsys.readouterr().out
    assert "1 failed" in printed and "s/max_steps0: see" in printed


@pytest.mark.parametrize(
    ("launcher", "study_options", "message"),
    [
        ("slurmm", {}, "launcher=slurmm: unknown; choices: local, submitit_local, slurm"),
        ("parallel", {}, "launcher=parallel: unknown; choices: local,"),  # joblib: not a study's
        (
            "slurm",
            {"partitoin": "gpu"},
            "launcher option partitoin is not an option of launcher=slurm; options: ",
        ),
    ],
)
def test_a_bad_launcher_is_one_line_and_submits_nothing(
    tmp_path, capsys, launcher, study_options, message
):
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "launcher": study_options}}
    with pytest.raises(SystemExit) as exit_:
        run_queue(tmp_path, studies, f"launcher={launcher}")
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {message}"), error
    assert "\n" not in error
    assert not (tmp_path / "runs").exists()  # nothing submitted, nothing written


def test_a_slurm_launcher_without_the_plugin_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("hydra_plugins.hydra_submitit") else real(name),
    )
    with pytest.raises(ConfigError, match=r"launcher=submitit_slurm needs the hydra-submitit"):
        make_executor("slurm", {}, CONF)
    assert launcher_names(CONF) == ["local", "submitit_local", "slurm"]


def fake_slurm(tmp_path: Path, monkeypatch, job_id: int) -> None:
    """Stand-ins for sbatch (keeps the script in tmp_path/script.sh, answers ``job_id``) and
    srun (submitit looks for it) on PATH, as no cluster is here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("sbatch", f'cp "$1" {tmp_path}/script.sh\necho "Submitted batch job {job_id}"'),
        ("srun", "exit 1"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_slurm_submission_has_the_launcher_configs_flags(tmp_path, monkeypatch):
    """submitit's own Slurm executor writes the sbatch script; stand-ins for sbatch (keeps
    the script) and srun (submitit looks for it) on PATH, as no cluster is here."""
    fake_slurm(tmp_path, monkeypatch, 4242)
    study = {"claim": "s", "overrides": TINY_ADDITION}
    (job,) = expand("s", study, tmp_path / "runs", dry_run=False)
    job.run_dir.parent.mkdir(parents=True)
    executor = make_executor("slurm", {"partition": "gpu", "timeout_min": 240}, CONF)
    executor.start(job, threads=4)
    script = (tmp_path / "script.sh").read_text()
    for flag in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --gpus-per-node=1",  # conf/hydra/launcher/slurm.yaml
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --signal=USR2@120",  # signal_delay_s: the requeue warning
        "#SBATCH --job-name=s/s",
    ):
        assert flag in script, (flag, script)
    log = job.log.read_text()
    assert "submitted as slurm job 4242 (launcher=slurm)" in log
    assert "hydra.run.dir=" in log and "resume=auto" in log
    assert executor.where() == "Slurm through submitit (launcher=slurm, partition gpu)"


@pytest.mark.slow
def test_a_deadline_stops_a_submitit_job_resumably_and_the_next_queue_continues(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(study_queue, "MIN_START_S", 1)
    studies = {"s": {"claim": "s", "overrides": [*TINY_ADDITION, "trainer.max_steps=100000"]}}
    run_queue(tmp_path, studies, "launcher=submitit_local", "minutes=0.6", "jobs=1")
    run_dir = tmp_path / "runs" / "s" / "s"
    first = json.loads((run_dir / "metrics.json").read_text())
    assert first["status"] == "interrupted" and first["global_step"] > 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert "SIGTERM" in report(tmp_path)["jobs"][0]["note"]

    run_queue(tmp_path, studies, "launcher=submitit_local", "minutes=0.6", "jobs=1")
    second = json.loads((run_dir / "metrics.json").read_text())
    assert second["status"] == "interrupted" and second["global_step"] > first["global_step"]
    assert "resuming from" in (tmp_path / "runs" / "s" / "s.log").read_text()


def worker_pids(folder: Path) -> list[int]:
    """The submitit worker processes of the jobs under ``folder`` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"submitit.core._submit" in cmdline and str(folder).encode() in b" ".join(cmdline):
                pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
def test_a_job_killed_mid_run_is_resumed_by_a_second_queue_run(tmp_path):
    studies = {"s": {"claim": "s", "overrides": [*TINY_ADDITION, "trainer.max_steps=400"]}}
    run_dir = tmp_path / "runs" / "s" / "s"
    killed: list[int] = []

    def kill_once_training() -> None:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.ckpt").is_file():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        for pid in worker_pids(tmp_path / "runs"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_once_training)
    killer.start()
    with pytest.raises(SystemExit):  # the killed job failed: the queue says so
        run_queue(tmp_path, studies, "launcher=submitit_local", "jobs=1")
    killer.join()
    assert killed, "the job ended before it could be killed"
    assert report(tmp_path)["jobs"][0]["status"] in ("failed", "running", "no metrics")

    run_queue(tmp_path, studies, "launcher=submitit_local", "jobs=1")
    done = json.loads((run_dir / "metrics.json").read_text())
    assert done["status"] == "completed" and done["global_step"] == 400
    assert "resuming from" in (tmp_path / "runs" / "s" / "s.log").read_text()


def test_launcher_slurm_where_slurm_is_absent_is_one_line_and_submits_nothing(
    tmp_path, capsys, monkeypatch
):
    """It was submitit's RuntimeError ("Could not detect srun") after 44 lines."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the queue runs in this process: no srun, no sbatch
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION}}
    with pytest.raises(SystemExit) as exit_:
        run_queue(tmp_path, studies, "launcher=slurm", "minutes=5")
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: launcher=slurm: no Slurm on this machine (srun not found)")
    assert "\n" not in error and "launcher=submitit_local" in error
    assert not (tmp_path / "runs").exists()


def test_a_launcher_option_on_the_command_line_reaches_the_submission(tmp_path, monkeypatch):
    """launcher.partition=... as Hydra's hydra.launcher.partition=...: over the study's own."""
    from gridlstm import queue

    cfg, options, _ = queue.parse(
        ["studies=x.yaml", "launcher=slurm", "launcher.partition=a100", "launcher.timeout_min=30"]
    )
    assert options == {"partition": "a100", "timeout_min": 30}
    with pytest.raises(ConfigError, match="launcher.partition: an option of a cluster launcher"):
        queue.parse(["studies=x.yaml", "launcher.partition=a100"])
    captured = {}
    monkeypatch.setattr(
        study_queue,
        "make_executor",
        lambda name, options, conf: (
            captured.update(options) or (_ for _ in ()).throw(ConfigError("stop here"))
        ),
    )
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "launcher": {"partition": "cpu"}}}
    with pytest.raises(SystemExit):
        run_queue(tmp_path, studies, "launcher=slurm", "launcher.partition=a100")
    assert captured == {"partition": "a100"}  # the command line wins over the study's


@pytest.mark.slow
def test_the_queue_itself_runs_as_a_submitit_job_and_returns_at_once(tmp_path, capsys):
    """submit=submitit_local: the command submits the queue and returns; the queue job runs
    the study to its table (the Slurm path is the same call with cluster=slurm)."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "cases": [{"seed": 1}]}}
    started = time.monotonic()
    assert run_queue(tmp_path, studies, "submit=submitit_local", "minutes=5") == 0
    assert time.monotonic() - started < 60  # it did not wait for the queue
    printed = capsys.readouterr().out
    assert "[queue] submitted as submitit_local job " in printed and "until its deadline" in printed
    queue_json = tmp_path / "results" / "s" / "gpu" / "queue.json"
    deadline = time.monotonic() + 600
    while not queue_json.is_file() and time.monotonic() < deadline:
        time.sleep(2)
    done = json.loads(queue_json.read_text())
    assert [(j["job"], j["status"]) for j in done["jobs"]] == [("seed1", "completed")]
    assert list((tmp_path / "runs" / ".submitit").glob("*/*_result.pkl"))  # submitit's job


def test_a_queue_job_on_slurm_asks_for_no_gpu_and_the_deadline_plus_a_margin(
    tmp_path, monkeypatch, capsys
):
    fake_slurm(tmp_path, monkeypatch, 77)
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION}}
    run_queue(
        tmp_path, studies, "submit=slurm", "submit.partition=cpu", "launcher=slurm", "minutes=100"
    )
    script = (tmp_path / "script.sh").read_text()
    for flag in ("#SBATCH --partition=cpu", "#SBATCH --time=120", "#SBATCH --cpus-per-task=2"):
        assert flag in script, (flag, script)
    assert "--gpus-per-node=1" not in script and "--job-name=gridlstm-queue" in script
    assert "submitted as slurm job 77" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit.partition=cpu"], "submit.partition: an option of the queue's own job"),
        (["submit=local"], "submit=local: the queue already runs here; submit=slurm"),
        (["submit=slurmm"], "launcher=slurmm: unknown; choices: local, submitit_local, slurm"),
    ],
)
def test_a_bad_submission_is_one_line_and_submits_nothing(tmp_path, capsys, args, message):
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION}}
    with pytest.raises(SystemExit) as exit_:
        run_queue(tmp_path, studies, *args)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {message}") and "\n" not in error, error
    assert not (tmp_path / "runs").exists()

"""Long runs that survive: resume, interruption (a real SIGTERM / SIGINT), divergence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, run_cli, task_overrides

# 10 steps of 3-batch epochs with dropout: a stop at step 4 is mid-epoch, and any RNG, data
# or optimizer state that a resume failed to restore changes the final numbers.
ADDITION = [*TINY, "trainer.max_steps=10", "model.net.dropout=0.1", "logger=csv"]
KILL = "+callbacks.kill._target_=tests.signals.SignalAtStep"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One completed tiny run, shared by the tests that only read it."""
    cwd = tmp_path_factory.mktemp("trained")
    result = run_cli([*TINY, "logger=csv", f"hydra.run.dir={cwd / 'run'}"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd / "run"


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def final_numbers(record: dict) -> dict:
    """What a resumed run must reproduce (timings excluded)."""
    return {
        k: v
        for k, v in record.items()
        if not k.startswith(("wall_time", "train/chars", "train/tokens", "provenance"))
    }


interrupted_parts: dict[Path, float] = {}  # wall time of each run's interrupted part


def interrupted_then_resumed(cli, args: list[str], step: int, name: str = "SIGTERM") -> Path:
    run = cli.cwd / "interrupted"
    first = cli(
        *args,
        f"hydra.run.dir={run}",
        KILL,
        f"+callbacks.kill.step={step}",
        f"+callbacks.kill.name={name}",
    )
    code = {"SIGTERM": 143, "SIGINT": 130}[name]
    assert first.returncode == code, first.stderr[-2000:]
    record = metrics(run)
    assert record["status"] == "interrupted" and record["global_step"] == step
    # the record names the seed the run used: the command line's, else train.yaml's 1234
    given = [a.split("=", 1)[1] for a in args if a.startswith("seed=")]
    assert record["seed"] == int(given[-1] if given else 1234)
    interrupted_parts[run] = record["wall_time_s"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert f"interrupted by {name} at step {step}" in first.stderr
    # the checkpoint is named from the working directory, a path true on any clone
    assert "resume with resume=auto from interrupted/checkpoints/last.ckpt" in record["reason"]
    second = cli(*args, f"hydra.run.dir={run}", "resume=auto")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stdout
    return run


def test_sigterm_mid_epoch_then_resume_matches_the_uninterrupted_run(cli):
    straight = cli(*ADDITION, f"hydra.run.dir={cli.cwd / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = interrupted_then_resumed(cli, ADDITION, step=4)
    first_wall = interrupted_parts[run]
    expected = final_numbers(metrics(cli.cwd / "straight"))
    assert expected["status"] == "completed" and expected["samples_seen"] == 80
    assert final_numbers(metrics(run)) == expected
    assert metrics(run)["wall_time_s"] > first_wall  # both parts counted
    # The CSV history covers the whole run, once: the steps of the uninterrupted run.
    assert logged_steps(run, "train/loss") == logged_steps(cli.cwd / "straight", "train/loss")
    assert logged_steps(run, "train/loss")[0] < 4


def logged_steps(run: Path, column: str) -> list[int]:
    import csv

    with (run / "csv" / "metrics.csv").open(newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get(column)]


@pytest.mark.slow  # the 2-process resume (tests/test_multirun_and_ddp.py) covers it too
def test_language_model_resume_restores_the_stream_position_and_carried_state(cli, tmp_path):
    # Validation every 15 steps (mid-epoch checkpoints); the stop at step 22 is mid-epoch, so
    # the resumed run must continue the streams with the carried state of step 22.
    args = [
        "task=text",
        *task_overrides("text", tmp_path),
        "trainer.max_steps=40",
        "trainer.val_check_interval=15",
        "model.net.dropout=0.1",
        "logger=csv",
    ]
    straight = cli(*args, f"hydra.run.dir={cli.cwd / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = interrupted_then_resumed(cli, args, step=22)
    assert final_numbers(metrics(run)) == final_numbers(metrics(cli.cwd / "straight"))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_stops_cleanly(cli):
    run = interrupted_then_resumed(cli, ADDITION, step=5, name="SIGINT")
    assert metrics(run)["status"] == "completed"


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the run directory: its bytes and modification time."""
    return {
        str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def test_a_completed_run_is_not_restarted_and_not_overwritten(cli, trained):
    run = trained
    before = snapshot(run)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json"} <= set(before)
    again = cli(*TINY, "logger=csv", f"hydra.run.dir={run}", "resume=auto")  # a requeued job
    assert again.returncode == 0 and "holds a completed run; nothing to do" in again.stdout
    # The directory reused by mistake, with another model: refused, and the stored config
    # still names the run's own model (Hydra used to rewrite it before the refusal).
    fresh = cli(*TINY, "logger=csv", "model=stacked_lstm", f"hydra.run.dir={run}")
    assert fresh.returncode == 2 and "already holds a completed run" in fresh.stderr
    assert "Traceback" not in fresh.stderr
    assert snapshot(run) == before


def test_a_resume_that_would_change_what_the_run_trains_is_refused(cli, trained):
    run = trained
    before = snapshot(run)
    other = cli(
        *TINY, "logger=csv", "model.net.num_layers=3", f"hydra.run.dir={run}", "resume=auto"
    )
    assert other.returncode == 2, other.stderr[-2000:]
    assert "holds a run with other settings: model.net.num_layers=2 (now 3)" in other.stderr
    longer = cli(*TINY, "logger=csv", "trainer.max_steps=9", f"hydra.run.dir={run}", "resume=auto")
    assert longer.returncode == 0 and "nothing to do" in longer.stdout  # how, not what: allowed
    assert snapshot(run) == before


def test_resume_auto_without_a_checkpoint_starts_fresh_and_says_so(cli):
    run = cli.cwd / "new"
    result = cli(*TINY, "logger=csv", f"hydra.run.dir={run}", "resume=auto")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resume=auto: no checkpoint in" in result.stdout
    assert metrics(run)["status"] == "completed"


@pytest.mark.parametrize(  # the other bad checkpoints in-process: tests/test_bad_input.py
    ("make", "message"),
    [(lambda tmp: _write(tmp / "garbage.ckpt", b"not a checkpoint"), "a text file")],
)
def test_bad_ckpt_path_is_one_line(cli, make, message):
    path = make(cli.cwd)
    result = cli(*TINY, f"ckpt_path={path}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "ckpt_path=" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (cli.cwd / "outputs").exists() or not list((cli.cwd / "outputs").rglob("*.ckpt"))


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# Step 7 breaks the weights mid-epoch (caught at the next step); step 8 is the last of an
# epoch, so a validation and a checkpoint follow at once (caught before them).
@pytest.mark.parametrize("step", [pytest.param(7, marks=pytest.mark.slow), 8])
def test_divergence_stops_at_the_step_and_keeps_the_last_good_checkpoint(cli, step):
    run = cli.cwd / "nan"
    result = cli(
        *ADDITION,
        f"hydra.run.dir={run}",
        "+callbacks.poison._target_=tests.signals.InfiniteLearningRateAtStep",
        f"+callbacks.poison.step={step}",
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"training diverged at step {step}: the weights became non-finite" in result.stderr
    record = metrics(run)
    assert record["status"] == "diverged" and record["global_step"] == step + 1
    text = (run / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    for path in (run / "checkpoints").glob("*.ckpt"):  # validations at steps 3 and 6
        weights = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        tensors = [w for w in weights.values() if torch.is_tensor(w)]  # not a grid's options
        assert all(torch.isfinite(w).all() for w in tensors), path.name


def test_an_exploding_loss_is_divergence_and_the_wandb_run_is_marked_failed(cli):
    huge = cli(*TINY, "logger=wandb", "optim.optimizer.lr=1e6", "hydra.run.dir=huge")
    assert huge.returncode == 3 and "above divergence.max_loss=1000" in huge.stderr
    assert metrics(cli.cwd / "huge")["status"] == "diverged"
    # W&B finishes the run with the same exit code (dashboards show it as failed).
    (log,) = (cli.cwd / "huge").glob("wandb/offline-run-*/logs/debug.log")
    assert "got exitcode: 3" in log.read_text()


@pytest.mark.parametrize(("skip", "code"), [(2, 0), pytest.param(1, 3, marks=pytest.mark.slow)])
def test_skip_steps_tolerates_a_bounded_number_of_bad_steps(cli, skip, code):
    run = cli.cwd / "spikes"
    result = cli(
        *TINY,
        "logger=csv",
        f"hydra.run.dir={run}",
        f"callbacks.divergence.skip_steps={skip}",
        "+callbacks.nan._target_=tests.signals.NaNGradientAtSteps",
        "+callbacks.nan.steps=[2,4]",
    )
    assert result.returncode == code, result.stderr[-2000:]
    if code == 0:
        assert metrics(run)["status"] == "completed"
        assert "step 2 skipped (train/grad_norm is nan)" in result.stdout + result.stderr
    else:
        assert "training diverged at step 4: train/grad_norm is nan" in result.stderr


def test_evaluate_reproduces_the_test_metrics_and_runs_with_a_longer_task(
    trained, tmp_path, monkeypatch, capsys
):
    from gridlstm.evaluate import main as evaluate

    monkeypatch.chdir(tmp_path)
    scores = metrics(trained)
    best = next((trained / "checkpoints").glob("best-*.ckpt"))
    evaluate([f"ckpt_path={best}", "out=same"])
    scored = metrics(tmp_path / "same")
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "test/digit_acc"):
        assert scored[key] == pytest.approx(scores[key], abs=1e-6), key
    assert "test/loss" in capsys.readouterr().out
    evaluate([f"ckpt_path={best}", "out=longer", "task.datamodule.digits=5"])
    assert metrics(tmp_path / "longer")["overrides"] == ["task.datamodule.digits=5"]
    assert "digits: 5" in (tmp_path / "longer" / "config.yaml").read_text()
    for args, message in [
        (["task.datamodule.digitz=5"], "task.datamodule.digitz: Key 'digitz' is not in struct"),
        (["model.net.num_layers=3"], "its weights do not fit the model"),
        (["trainer.max_steps=3"], "only task.*, model.* and hardware.* options apply"),
        (["out=same"], "out=same already holds a metrics.json"),
    ]:
        with pytest.raises(SystemExit) as stop:
            evaluate([f"ckpt_path={best}", *args])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mnist", "translation"])
def test_resume_matches_for_shuffled_datasets(cli, tmp_path, task):
    """Shuffles (MNIST) and bucket orders (translation) are drawn from (seed, epoch), and a
    mid-epoch resume skips the batches already trained on."""
    model = {"mnist": "row_lstm", "translation": "lstm_attention"}[task]
    args = [
        f"task={task}",
        f"model={model}",
        *task_overrides(task, tmp_path),
        "trainer.max_steps=12",
        "logger=csv",
    ]
    if task == "mnist":
        args += ["task.datamodule.val_size=10"]  # 50 train images: 6 batches of 8 per epoch
    straight = cli(*args, f"hydra.run.dir={cli.cwd / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = interrupted_then_resumed(cli, args, step=8)
    assert final_numbers(metrics(run)) == final_numbers(metrics(cli.cwd / "straight"))


def test_resume_must_be_false_or_auto(cli):
    result = cli(*TINY, "resume=maybe")
    assert result.returncode == 2 and "resume=maybe: valid choices are false, auto" in result.stderr


def test_sigusr1_outside_slurm_stops_like_sigterm(cli):
    """Schedulers other than SLURM send SIGUSR1 as their warning: it saves and stops."""
    run = cli.cwd / "usr1"
    result = cli(
        *ADDITION,
        f"hydra.run.dir={run}",
        KILL,
        "+callbacks.kill.step=4",
        "+callbacks.kill.name=SIGUSR1",
    )
    assert result.returncode == 143, result.stderr[-2000:]
    assert metrics(run)["status"] == "interrupted"
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_resumed_run_logs_into_the_same_wandb_run(cli):
    """Offline W&B: each part of the run writes an offline run folder, both under the id
    the run directory stores, so `wandb sync` (resume="allow") joins them into one run."""
    args = [*TINY, "trainer.max_steps=10", "logger=wandb_csv"]
    run = interrupted_then_resumed(cli, args, step=4)
    stored = (run / "wandb_run_id.txt").read_text().strip()
    parts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(parts) == 2, parts
    assert all(part.name.endswith(f"-{stored}") for part in parts), (stored, parts)


@pytest.mark.slow  # 22 s; the W&B resume test keeps the default suite near 10 minutes
def test_tensorboard_and_mlflow_keep_one_history_across_a_resume(cli):
    """logger=tensorboard and logger=mlflow, offline (a local SQLite store): the resumed part
    logs into the same MLflow run (its stored id) and beside the first part's TensorBoard
    events, so each shows one curve over steps 1-10."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    args = [*TINY, "trainer.max_steps=10", "logger=[mlflow,tensorboard]"]
    run = interrupted_then_resumed(cli, args, step=4)
    run_id = (run / "mlflow_run_id.txt").read_text().strip()
    assert not (cli.cwd / "mlflow.db").exists() and not (cli.cwd / "mlruns").exists()
    client = MlflowClient(f"sqlite:///{run / 'mlflow.db'}")  # the store is the run's own
    experiment = client.get_experiment_by_name("gridlstm").experiment_id
    assert [r.info.run_id for r in client.search_runs(experiment)] == [run_id]
    steps = sorted({m.step for m in client.get_metric_history(run_id, "train/loss")})
    assert steps[0] <= 2 and steps[-1] >= 9 and len(steps) >= 9, steps
    events = EventMultiplexer().AddRunsFromDirectory(str(run / "tensorboard")).Reload()
    (name,) = events.Runs()
    tb_steps = sorted({e.step for e in events.Scalars(name, "train/loss")})
    assert steps == tb_steps and len(list((run / "tensorboard").glob("events.out.*"))) == 2

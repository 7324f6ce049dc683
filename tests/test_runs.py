"""Run records survive failures: atomic, strict metrics.json and checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gridlstm.run import runs


def test_metrics_json_is_strict_and_records_the_status(tmp_path):
    runs.write_metrics(tmp_path, {"status": "diverged", "val/loss": math.nan, "x": [math.inf, 1.0]})
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"status": "diverged", "val/loss": None, "x": [None, 1.0]}
    assert runs.read_status(tmp_path) == "diverged"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "missing"),
        ("{", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"status": "done"}', "status 'done' is not one of completed, interrupted"),
    ],
)
def test_a_bad_record_is_named_once_and_read_as_none(tmp_path, text, problem):
    if text is not None:
        (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(runs.RecordError, match=problem):
        runs.load_record(tmp_path)
    assert runs.read_record(tmp_path) is None and runs.read_status(tmp_path) is None


def test_a_record_without_a_status_is_a_completed_run(tmp_path):
    """Written before statuses existed: every reader (resume, queue, sweeps, tables) takes
    it as completed, because they all read through `runs.load_record`."""
    (tmp_path / "metrics.json").write_text('{"test/acc": 1.0}')
    assert runs.read_status(tmp_path) is runs.Status.COMPLETED
    assert runs.load_record(tmp_path) == {"test/acc": 1.0, "status": "completed"}


def test_a_failed_metrics_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    runs.write_metrics(tmp_path, {"status": "completed", "test/acc": 0.5})
    before = (tmp_path / "metrics.json").read_text()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    from gridlstm.data import files

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        runs.write_metrics(tmp_path, {"status": "completed", "test/acc": 0.9})
    assert (tmp_path / "metrics.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_an_interrupted_checkpoint_write_leaves_the_previous_checkpoint_loadable(
    tmp_path, monkeypatch
):
    """The suite saves through the Trainer (ModelCheckpoint, the interrupt checkpoint): a
    save killed half way through leaves the previous last.ckpt whole, and the suite's
    loader and resume check still accept it."""
    from fsspec.implementations.local import LocalFileOpener

    from gridlstm.data import AdditionDataModule
    from gridlstm.run import checkpoints
    from gridlstm.tasks import AlgorithmicSequenceModule
    from tests.conftest import quiet_trainer

    net = {
        "_target_": "gridlstm.nn.Grid2dLSTM",
        "input_size": 8,
        "hidden_size": 8,
        "num_layers": 1,
        "batch_first": True,
    }
    adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}
    data = AdditionDataModule(
        digits=2, batch_size=8, batches_per_epoch=2, val_size=8, test_size=8, eval_batch_size=8
    )
    module = AlgorithmicSequenceModule(net, optimizer=adam, **data.module_kwargs())
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    path = tmp_path / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(path)
    saved = {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}
    real_write = LocalFileOpener.write

    def killed_mid_write(self, data):
        real_write(self, data[: len(data) // 2])
        raise KeyboardInterrupt  # the process is stopped half way

    for p in module.parameters():
        p.data.zero_()
    monkeypatch.setattr(LocalFileOpener, "write", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(path)
    monkeypatch.undo()
    loaded = checkpoints.read(path)
    for key, value in saved.items():
        assert torch.equal(loaded["state_dict"][key], value), key
    runs.check_checkpoint(path, "ckpt_path", {})


def test_resume_choices_and_refusals(tmp_path):
    from gridlstm.run.errors import ConfigError

    assert runs.resume_from("auto", None, tmp_path, {}) is None  # nothing yet: start fresh
    assert runs.resume_from(False, None, tmp_path, {}) is None
    with pytest.raises(ConfigError, match="resume=yes: valid choices are false, auto"):
        runs.resume_from("yes", None, tmp_path, {})
    (tmp_path / "checkpoints").mkdir()
    torch.save(
        {"state_dict": {}, "gridlstm_run": {"task": "addition"}},
        tmp_path / "checkpoints" / "last.ckpt",
    )
    with pytest.raises(ConfigError, match="holds checkpoints of an earlier run; continue it"):
        runs.resume_from(False, None, tmp_path, {"task": "addition"})
    found = runs.resume_from("auto", None, tmp_path, {"task": "addition"})
    assert found == tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="the checkpoint is of task=addition, this run is"):
        runs.resume_from("auto", None, tmp_path, {"task": "parity"})


def test_a_stopped_run_records_the_width_its_param_budget_solved():
    """Tables read `hidden` from metrics.json: an interrupted job must not fall back to the
    config's unsolved width."""
    from types import SimpleNamespace

    from gridlstm.run.training import stopped

    module = SimpleNamespace(num_parameters=251490, extra_metrics={"hidden": 124}, samples_seen=64)
    trainer = SimpleNamespace(global_step=1)
    reason = "interrupted by SIGTERM at step 1"
    record = stopped("interrupted", reason, 143, trainer, module, 0.0, seed=7)
    assert record.metrics["hidden"] == 124 and record.metrics["params"] == 251490
    assert record.metrics["seed"] == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "is not a mapping of settings"), ("model: [unclosed\n", "cannot be read")],
)
def test_a_damaged_stored_config_is_a_change_that_refuses_a_resume(tmp_path, text, message):
    from omegaconf import OmegaConf

    from gridlstm.run.stored_config import changed_settings

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(text)
    changes = changed_settings(OmegaConf.create({"model": {"name": "grid2d"}}), tmp_path)
    assert len(changes) == 1 and message in changes[0]


def test_a_resume_compares_what_an_interpolated_setting_resolves_to(tmp_path):
    """model.net.priority is ${grid2d_priority}: a run stored with depth priority (written
    before the default changed, as a literal, or through the root key) resumes under
    grid2d_priority=depth and is refused under the default none, naming the values."""
    from omegaconf import OmegaConf

    from gridlstm.run.stored_config import changed_settings, save
    from tests.test_configs import compose_train

    now_depth = compose_train(["grid2d_priority=depth"], tmp_path)
    now_none = compose_train([], tmp_path)
    literal = OmegaConf.to_container(now_depth, resolve=False)
    literal["model"]["net"]["priority"] = "depth"  # how a run from before 2026-11-25 stored it
    for stored in (now_depth, OmegaConf.create(literal)):
        save(stored, tmp_path / "run")
        assert changed_settings(now_depth, tmp_path / "run") == []
        assert changed_settings(now_none, tmp_path / "run") == [
            "model.net.priority=depth (now none)"
        ]


def test_a_resume_judges_a_setting_derived_from_max_steps_as_the_stored_run_had_it(tmp_path):
    """The default experiment's LinearLR runs over ${trainer.max_steps}: a longer max_steps
    (which a resume may change) is not a change of the optimiser, since the checkpoint
    restores the scheduler's own total_iters; another schedule or rate still is."""
    from gridlstm.run.stored_config import changed_settings, save
    from tests.test_configs import compose_train

    save(compose_train([], tmp_path), tmp_path / "run")
    assert (
        changed_settings(compose_train(["trainer.max_steps=6000"], tmp_path), tmp_path / "run")
        == []
    )
    assert changed_settings(
        compose_train(["optim.optimizer.lr=0.001"], tmp_path), tmp_path / "run"
    ) == ["optim.optimizer.lr=0.003 (now 0.001)"]
    assert changed_settings(compose_train(["optim.scheduler=null"], tmp_path), tmp_path / "run")

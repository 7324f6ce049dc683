"""W&B mode: explicit config, else WANDB_MODE, else online only with credentials."""

from __future__ import annotations

import os

import pytest

from gridlstm.run.loggers import wandb_mode


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_offline_without_credentials(no_credentials):
    assert wandb_mode() == "offline"


def test_online_with_an_api_key_or_netrc(no_credentials, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.delenv("NETRC")
    assert wandb_mode() == "online"


def test_wandb_mode_env_and_config_take_precedence(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
    assert wandb_mode("offline") == "offline"


def test_final_metrics_go_to_the_wandb_run_summary(no_credentials, tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from gridlstm.run.loggers import finish_wandb, log_final_metrics

    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb_logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    csv_logger = CSVLogger(str(tmp_path))
    try:
        log_final_metrics([csv_logger, wandb_logger], {"test/acc": 0.75, "params": 12})
        assert wandb_logger.experiment.summary["test/acc"] == 0.75
        assert wandb_logger.experiment.summary["params"] == 12
    finally:
        finish_wandb()


def test_no_anonymous_setting_warning_on_an_offline_run(no_credentials, tmp_path):
    """Lightning passes anonymous=None, which wandb warns about on every run. Checked in a
    fresh process: wandb prints that warning once per process and keeps its settings."""
    import subprocess
    import sys

    script = f"""
from lightning.pytorch.loggers import WandbLogger
from gridlstm.run.loggers import drop_unset_anonymous, finish_wandb
logger = WandbLogger(save_dir={str(tmp_path)!r}, offline=True, project="test")
drop_unset_anonymous(logger)
logger.experiment.log({{"x": 1}})
finish_wandb()
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    assert "offline" in console  # wandb did print its own lines
    assert "anonymous setting has no effect" not in console

"""``python train.py`` end to end, as a user runs it (subprocesses, offline)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("outputs/*/*/.hydra"))


def test_single_run_writes_metrics_and_loadable_checkpoints(cli):
    result = cli(*TINY, "logger=csv")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(cli.cwd)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "val/acc",
        "val/digit_acc",
        "val/loss",
        "test/acc",
        "test/digit_acc",
        "test/loss",
        "params",
        "samples_seen",
        "wall_time_s",
        "val/samples_to_threshold",
    ):
        assert key in metrics, key
    assert metrics["samples_seen"] == 6 * 8
    assert 0.0 <= metrics["test/acc"] <= 1.0
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["net"]["_target_"] == "gridlstm.nn.Grid2dLSTM"
    assert checkpoint["samples_seen"] == 48
    assert list(run.glob("checkpoints/best-step*.ckpt"))
    assert (run / "csv" / "metrics.csv").exists()
    # The curves hold the two fit-time validations (3 batches per epoch, 6 steps), not the
    # final scores of the best checkpoint.
    with (run / "csv" / "metrics.csv").open() as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("val/acc")]
    assert len(logged) == 2 and not any(row.get("test/acc") for row in logged)
    assert "Final metrics" in result.stdout
    # What made it (gridlstm.run.provenance): in the record, never on the console.
    made = metrics["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}|no commit", made["code"]["commit"])
    assert isinstance(made["code"]["dirty"], bool)
    if made["code"]["dirty"]:  # the diff beside the record, its hash in it
        diff = (run / "provenance.diff").read_text()
        assert hashlib.sha256(diff.encode()).hexdigest() == made["code"]["diff_sha256"]
    assert set(made["versions"]) == {"python", "torch", "lightning", "numpy", "gridlstm"}
    assert made["machine"]["cpu"] and made["machine"]["threads"] >= 1
    assert made["step_paths"] and made["imported_from"].endswith("gridlstm")
    assert made["command"][0] == "train.py" and "logger=csv" in made["command"]
    assert metrics["fingerprint"]["train/loss"].keys() == {"1"}  # 6 steps: step 1 only
    assert "provenance" not in result.stdout and "fingerprint" not in result.stdout


def test_stacked_lstm_runs_through_the_cli(cli):
    result = cli(*TINY, "model=stacked_lstm", "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(cli.cwd)
    assert json.loads((run / "metrics.json").read_text())["params"] > 0


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("model=grid9d", ["Could not find 'model/grid9d'", "grid2d", "stacked_lstm"]),
        ("task=chess", ["Could not find 'task/chess'", "addition"]),
        ("hardware=tpu", ["Could not find 'hardware/tpu'", "ddp_cpu", "gpu"]),
        (
            "model.net.widht=3",
            ["Could not override 'model.net.widht'", "+model.net.widht=3", "not in struct"],
        ),
        ("seed=1,2", ["Ambiguous value for argument 'seed=1,2'", "--multirun"]),
    ],
)
def test_unknown_group_option_names_the_choices(cli, override, fragments):
    """Hydra's own refusals, as one line with exit code 2 like the suite's."""
    result = cli(override)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not run_dirs(cli.cwd)


@pytest.mark.parametrize(
    ("override", "message"),
    [  # as a user meets them; every value check in-process: tests/test_bad_input.py
        ("model.net.hidden_size=abc", "error: model.net.hidden_size=abc: expected an integer"),
        (
            "task=enwik8 task.datamodule.download=false task.datamodule.data_dir=nowhere",
            "error: task=enwik8:",
        ),
        ("hardware=gpu", "error: hardware=gpu: no CUDA GPU is available on this machine"),
    ],
)
def test_bad_values_stop_before_training_and_spare_earlier_runs(cli, override, message):
    earlier = cli.cwd / "outputs" / "earlier" / "run"
    (earlier / ".hydra").mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"test/acc": 0.5}')
    before = {p: p.stat().st_mtime_ns for p in earlier.rglob("*")}

    own = override.split(" ")
    base = [o for o in TINY if not o.startswith("task.")] if "task=" in override else TINY
    result = cli(*base, *own, "logger=none")
    assert result.returncode == 2
    # The error comes first and alone: no run directory, config tree or Lightning lines.
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) <= 3 and lines[0].startswith(message), lines
    assert "Traceback" not in result.stderr
    assert "Epoch" not in result.stdout  # no training started
    assert {p: p.stat().st_mtime_ns for p in earlier.rglob("*")} == before
    # A refused run leaves no folder behind (Hydra made outputs/<date>/<time> for it).
    assert [p for p in cli.cwd.glob("outputs/*/*") if p != earlier] == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=grid1d"],
            "error: model=grid1d takes vector input but task=addition provides sequence input; "
            "models for task=addition: grid2d, grid2d_coreylynch, grid2d_untied, stacked_gru, "
            "stacked_lstm, stacked_peephole_lstm",
        ),
        (
            ["task=parity"],
            "error: model=grid2d takes sequence input but task=parity provides vector input; "
            "models for task=parity: grid1d, relu_net, relu_resnet, tanh_net",
        ),
    ],
)
def test_incompatible_model_and_task_names_the_compatible_models(cli, overrides, message):
    result = cli(*overrides, "logger=none")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_installed_train_command_finds_its_config_or_says_where_to_look(
    tmp_path, monkeypatch, capsys
):
    """``python -m gridlstm.train`` / ``gridlstm-train``: $GRIDLSTM_CONF, the checkout's
    conf/, ./conf, in that order; none of them is one line and exit 2."""
    from gridlstm import train as command
    from gridlstm.run import conf as config

    checkout = config.CHECKOUT_CONF
    assert config.find_conf_dir() == checkout.resolve()
    mine = tmp_path / "myconf"
    mine.mkdir()
    (mine / "train.yaml").write_text("seed: 1\n")
    monkeypatch.setenv("GRIDLSTM_CONF", str(mine))
    assert config.find_conf_dir() == mine.resolve()
    monkeypatch.delenv("GRIDLSTM_CONF")
    monkeypatch.setattr(config, "CHECKOUT_CONF", tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    assert config.find_conf_dir() is None
    monkeypatch.setattr("sys.argv", ["gridlstm-train"])
    with pytest.raises(SystemExit) as stop:
        command.main()
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: no conf/train.yaml found: run from the repository root or set "
        "GRIDLSTM_CONF=/path/to/conf"
    )


@pytest.mark.slow
def test_debug_profiler_and_limit_presets(cli):
    """debug=profiler ends the log with Lightning's profiler table over its 50 steps;
    debug=limit trains 20 steps; neither keeps a logger."""
    small = [o for o in TINY if not o.startswith("trainer.")] + ["print_config=false"]
    result = cli(*small, "debug=profiler", "hydra.run.dir=profiler")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FIT Profiler Report" in result.stdout + result.stderr
    assert json.loads((cli.cwd / "profiler" / "metrics.json").read_text())["global_step"] == 50
    result = cli(*small, "debug=limit", "hydra.run.dir=limit")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((cli.cwd / "limit" / "metrics.json").read_text())
    assert record["global_step"] == 20
    assert not (cli.cwd / "limit" / "csv").exists() and not (cli.cwd / "limit" / "wandb").exists()


def test_the_config_is_printed_short_by_default_and_whole_when_asked(cli):
    """A 60-step run printed about 155 lines of config before its first step; now the groups
    and the overrides (print_config=full: the tree; a bad value: one line, exit 2)."""
    short = cli(*TINY, "logger=none")
    assert short.returncode == 0, short.stderr
    lines = short.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("config: "))
    assert "model=" in lines[start] and "task=" in lines[start]
    assert lines[start + 1].startswith("  overrides: ") and "logger=none" in lines[start + 1]
    assert "print_config=full" in lines[start + 2]
    assert "_target_" not in short.stdout  # no tree
    full = cli(*TINY, "logger=none", "print_config=full")
    assert full.returncode == 0 and "_target_" in full.stdout
    bad = cli(*TINY, "print_config=tree")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "print_config=tree: choose one of short, full, false" in bad.stderr


@pytest.mark.parametrize("cuda", [False, True])
def test_train_takes_the_names_every_command_shares(monkeypatch, cuda):
    """README: every command takes device= and out=; train.py refused both (Hydra then
    suggested +device=, the wrong fix). The device is checked as the other commands check it."""
    from gridlstm.run.errors import ConfigError
    from gridlstm.train import shared_names

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if cuda else 0)
    assert shared_names(["device=cpu", "out=runs/a", "seed=3"]) == [
        "hardware=cpu",
        "hydra.run.dir=runs/a",
        "seed=3",
    ]
    assert shared_names(["-m", "out=runs/s"]) == ["-m", "hydra.sweep.dir=runs/s"]
    if cuda:
        assert shared_names(["device=cuda:1"]) == ["hardware=gpu", "hardware.devices=[1]"]
    else:
        with pytest.raises(ConfigError, match="device=cuda: no CUDA device is available"):
            shared_names(["device=cuda"])

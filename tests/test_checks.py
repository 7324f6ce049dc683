"""What is checked before any work: the options handed to Lightning's Trainer, the hardware,
the optimizer and scheduler, and the seed (in-process on composed configs; the end-to-end
path through train.py is covered by one case per kind in the CLI tests)."""

from __future__ import annotations

import pytest

from gridlstm.run.config import check_run
from gridlstm.run.errors import ConfigError
from tests.test_configs import compose_train

CASES = [
    ("hardware=gpu", "hardware=gpu: no CUDA GPU is available on this machine"),
    ("hardware.devices=0", "hardware.devices=0: give a count >= 1, -1 (all), 'auto'"),
    ("hardware.devices=[-1]", "hardware.devices=[-1]: give a count >= 1"),
    ("hardware.devices=abc", "hardware.devices=abc: give a count >= 1"),
    ("hardware.precision=17", "hardware=cpu / trainer: Precision 17 is invalid"),
    ("hardware.accelerator=tpu", "hardware=cpu / trainer: Requirement 'torch_xla"),
    ("+hardware.strategy=fsdp2x", "hardware=cpu / trainer:"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5: give a number of optimizer steps >= 1"),
    ("trainer.max_steps=0", "trainer.max_steps=0: give a number of optimizer steps >= 1"),
    ("trainer.max_steps=1.5", "trainer.max_steps=1.5: give a number"),
    ("trainer.max_epochs=-1", None),  # fine while max_steps is set
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: give a norm > 0"),
    ("trainer.gradient_clip_val=0", None),  # documented: no clipping
    ("trainer.val_check_interval=0", "trainer.val_check_interval=0: give a fraction in (0, 1]"),
    ("trainer.val_check_interval=1.5", "trainer.val_check_interval=1.5: give a fraction"),
    ("trainer.limit_val_batches=0", "trainer.limit_val_batches=0: give a fraction in (0, 1]"),
    ("trainer.log_every_n_steps=-1", "trainer.log_every_n_steps=-1: give an integer >= 1"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0: give an integer"),
    ("+trainer.max_step=3", "trainer.max_step: not an argument of lightning.Trainer; did you"),
    ("+trainer.foo=1", "trainer.foo: not an argument of lightning.Trainer"),
    ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: give an integer"),
    ("optim.optimizer.lr=-1", "optim.optimizer: Invalid learning rate: -1"),
    ("optim.optimizer.weight_decay=-0.1", "optim.optimizer: Invalid weight_decay value"),
    (
        "optim.optimizer._target_=torch.optim.Adamm",
        "optim.optimizer: Error loading 'torch.optim.Adamm': ModuleNotFoundError",
    ),
    ("+optim.optimizer.betas=[0.9]", "optim.optimizer:"),
    (
        "optim.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true}",
        "optim.scheduler: StepLR.__init__() missing 1 required positional argument",
    ),
    (
        "optim.scheduler={_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true,"
        "T_max:100,foo:1}",
        "optim.scheduler:",
    ),
    ("seed=-3", "seed=-3: give an integer in [0, 2**32 - 1]"),
    ("seed=4294967296", "seed=4294967296: give an integer in [0, 2**32 - 1]"),
    ("seed=1.5", "seed=1.5: give an integer"),
]


@pytest.mark.parametrize(("override", "message"), CASES, ids=[c[0][:40] for c in CASES])
def test_run_options_are_checked_before_any_work(tmp_path, override, message):
    cfg = compose_train([override], tmp_path)
    if message is None:
        check_run(cfg)
        return
    with pytest.raises(ConfigError) as error:
        check_run(cfg)
    text = str(error.value)
    assert text.startswith(message), text
    assert "\n" not in text  # one line


def test_never_ending_runs_are_refused(tmp_path):
    cfg = compose_train(["trainer.max_steps=-1", "trainer.max_epochs=-1"], tmp_path)
    with pytest.raises(ConfigError, match="the run would never end"):
        check_run(cfg)


def test_every_preset_passes_the_checks(tmp_path):
    """The shipped configs are valid (GPU presets are composed with hardware=cpu here)."""
    from tests.test_configs import CONF

    for preset in sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")):
        cfg = compose_train([f"experiment={preset}", "hardware=cpu"], tmp_path)
        check_run(cfg)


def test_an_output_directory_that_cannot_be_created_is_one_line(tmp_path):
    from gridlstm.run.config import output_dir_problem

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    message = output_dir_problem([f"hydra.run.dir={blocker}/run"], cwd=tmp_path)
    assert message == (
        f"hydra.run.dir={blocker}/run: cannot be created ({blocker} is not a writable "
        "directory); choose a place you can write to"
    )
    assert output_dir_problem([f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path) is None
    assert output_dir_problem(["seed=1"], cwd=tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # the check creates nothing


def test_a_run_refused_before_hydra_leaves_no_run_directory(tmp_path):
    """An override Hydra refuses (checked before Hydra starts) creates no hydra.run.dir."""
    from tests.conftest import run_cli

    result = run_cli(["+logger/nope@logger=x", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert result.returncode == 2 and "logger/nope" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_saved_configs_are_read_without_calling_foreign_resolvers(monkeypatch):
    """A checkpoint's or job's config is data: only the suite's resolvers run on it."""
    from omegaconf import OmegaConf

    from gridlstm.run.config import defuse, resolved

    monkeypatch.setenv("GRIDLSTM_TEST_SECRET", "hunter2-token")
    raw = {
        "a": "${oc.env:GRIDLSTM_TEST_SECRET}",
        "b": ["x-${oc.decode:'1'}"],
        "c": "${a}",
        "d": "${oc.select:e,7}",
    }
    cfg = resolved(OmegaConf.create(defuse(raw)))  # what the evaluate tool does
    assert cfg.a == "${oc.env:GRIDLSTM_TEST_SECRET}" and cfg.c == cfg.a
    assert cfg.b[0] == "x-${oc.decode:'1'}" and cfg.d == 7
    assert "hunter2" not in OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize(
    ("logger", "package", "extra"),
    [("tensorboard", "tensorboard", "tensorboard"), ("mlflow", "mlflow", "mlflow")],
)
def test_a_logger_whose_package_is_missing_names_the_extra(
    logger, package, extra, monkeypatch, tmp_path
):
    """Patched both ways: refused without the package (and tensorboardX), accepted with it."""
    import importlib.util

    from gridlstm.run.config import check_loggers
    from gridlstm.run.errors import ConfigError

    cfg = compose_train([f"logger={logger}"], tmp_path)
    check_loggers(cfg)  # installed here (the dev extra)
    found = importlib.util.find_spec
    missing = {package, "tensorboardX"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else found(name, *a)
    )
    with pytest.raises(
        ConfigError,
        match=rf'logger={logger} needs the {package} package: pip install -e "\.\[{extra}\]"',
    ):
        check_loggers(cfg)


def test_a_preset_knob_for_a_callback_the_group_no_longer_holds_is_refused(tmp_path):
    """experiment=deep_tied sets callbacks.depth_probe.every_n_steps; with callbacks=solved
    that entry is a bare dict, which Lightning met only when the run failed mid-fit."""
    cfg = compose_train(["experiment=deep_tied", "callbacks=solved"], tmp_path)
    with pytest.raises(ConfigError) as caught:
        check_run(cfg)
    assert str(caught.value).startswith(
        "callbacks.depth_probe sets every_n_steps but names no component (_target_)"
    )
    assert "~callbacks.depth_probe" in str(caught.value)
    check_run(
        compose_train(
            ["experiment=deep_tied", "callbacks=solved", "~callbacks.depth_probe"], tmp_path
        )
    )
    cfg = compose_train(["+logger.wandb2.project=x"], tmp_path)
    with pytest.raises(ConfigError, match="logger.wandb2 sets project but names no component"):
        check_run(cfg)


def test_a_place_where_mkdir_fails_is_one_line_though_permissions_allow_it(tmp_path, monkeypatch):
    """/proc or a read-only mount: os.access says writable, mkdir fails; the check asks the
    mount (and writes nothing: the parent's mtime stays)."""
    import os

    from gridlstm.run.config import check_writable

    before = tmp_path.stat().st_mtime_ns
    check_writable(tmp_path / "run", "hydra.run.dir")
    assert list(tmp_path.iterdir()) == [] and tmp_path.stat().st_mtime_ns == before
    real = os.statvfs(tmp_path)
    fields = [getattr(real, f) for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail")]
    fields += [getattr(real, f) for f in ("f_files", "f_ffree", "f_favail")]
    read_only = os.statvfs_result((*fields, real.f_flag | os.ST_RDONLY, real.f_namemax))
    monkeypatch.setattr(os, "statvfs", lambda _: read_only)
    with pytest.raises(ConfigError, match=r"cannot be created \(.* is on a read-only mount\)"):
        check_writable(tmp_path / "run", "hydra.run.dir")
    if os.path.isdir("/proc/self"):  # Linux
        monkeypatch.undo()
        with pytest.raises(ConfigError, match="is on a kernel file system"):
            check_writable("/proc/nope/run", "hydra.run.dir")

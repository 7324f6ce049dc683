"""Every file of every config group composes; every compatible model x task pair builds
and completes a ``fast_dev_run`` (in process, like lightning-hydra-template's tests)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from gridlstm.run.config import models_for
from gridlstm.run.hydra_runtime import register_resolvers
from gridlstm.run.training import train
from tests.conftest import CONF, task_overrides

register_resolvers()
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


def compose_train(overrides: list[str], output_dir: Path | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_expected_groups_exist():
    assert {
        "model",
        "task",
        "hardware",
        "logger",
        "trainer",
        "callbacks",
        "experiment",
        "debug",
    } <= set(GROUPS)
    assert {"cpu", "gpu", "ddp", "ddp_cpu"} <= {o for g, o in OPTIONS if g == "hardware"}
    assert {"wandb", "csv", "none"} <= {o for g, o in OPTIONS if g == "logger"}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_file_composes(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert cfg.model.input_kind and cfg.task.input_kind


def test_every_model_declares_an_input_kind_and_every_task_has_a_model():
    kinds = {OmegaConf.load(CONF / "task" / f"{t}.yaml").input_kind for t in TASKS}
    for kind in kinds:
        assert models_for(kind, CONF), f"no model accepts {kind} input"


PAIRS = [
    (m, t)
    for m in MODELS
    for t in TASKS
    if OmegaConf.load(CONF / "model" / f"{m}.yaml").input_kind
    == OmegaConf.load(CONF / "task" / f"{t}.yaml").input_kind
]


@pytest.mark.parametrize(("model", "task"), PAIRS, ids=[f"{m}-{t}" for m, t in PAIRS])
def test_every_compatible_pair_runs_fast_dev_run(model, task, tmp_path):
    overrides = [f"model={model}", f"task={task}", "debug=fast_dev_run", "hardware=cpu"]
    small = [o for o in task_overrides(task, tmp_path) if not o.startswith("trainer.")]
    cfg = compose_train(overrides + small, tmp_path)
    metrics = train(cfg)
    assert metrics["params"] > 0
    main = cfg.task.monitor.split("/")[1]
    assert {f"val/{main}", f"test/{main}"} <= metrics.keys()
    assert json.loads((tmp_path / "metrics.json").read_text())["params"] == metrics["params"]


def test_every_preset_logs_to_wandb_and_csv(tmp_path):
    """Curves for every preset: the table command reads the CSV logs, W&B the dashboards.
    (Not `default`, the root settings `python train.py` runs: W&B alone, as the README says.)"""
    presets = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert "default" in presets
    for preset in presets:
        cfg = compose_train([f"experiment={preset}"], tmp_path)
        expected = {"wandb"} if preset == "default" else {"wandb", "csv"}
        assert set(cfg.logger) == expected, preset


def test_the_default_experiment_stops_once_solved_where_the_task_has_a_solved(tmp_path):
    """`python train.py` (experiment `default`) stops at a validation above the task's
    solved_above; a task with no "solved" is never stopped by it; a preset replaces it."""
    cfg = compose_train([], tmp_path)
    assert cfg.callbacks.solved.stopping_threshold == 0.9985
    assert cfg.callbacks.solved.monitor == "val/acc" and cfg.callbacks.solved.mode == "max"
    assert compose_train(["task=text"], tmp_path).callbacks.solved.stopping_threshold is None
    assert "solved" not in compose_train(["experiment=addition_cpu"], tmp_path).callbacks
    assert "solved" not in compose_train(["callbacks=default"], tmp_path).callbacks


def test_the_default_experiment_on_addition_decays_its_learning_rate_over_its_steps(tmp_path):
    """`python train.py` (experiment `default`, task addition) runs at most 3,000 steps and
    decays Adam's 3e-3 linearly to a fifth over the run's max_steps, stepped every optimizer
    step: checked on the learning rate the real run logs (LearningRateMonitor, CSV)."""
    cfg = compose_train([], tmp_path)
    assert (cfg.trainer.max_steps, cfg.optim.optimizer.lr) == (3000, 0.003)
    assert OmegaConf.to_container(cfg.optim.scheduler, resolve=True) == {
        "_target_": "torch.optim.lr_scheduler.LinearLR",
        "_partial_": True,
        "start_factor": 1.0,
        "end_factor": 0.2,
        "total_iters": 3000,
    }
    small = [
        "logger=csv",
        "model.net.hidden_size=8",
        "model.net.num_layers=1",
        "task.datamodule.batch_size=4",
        "task.datamodule.batches_per_epoch=5",
        "task.datamodule.val_size=8",
        "task.datamodule.test_size=8",
        "trainer.max_steps=10",
        "trainer.log_every_n_steps=1",
        "task.solved_above=1.0",  # never stopped early
    ]
    train(compose_train(small, tmp_path))
    with (tmp_path / "csv" / "metrics.csv").open() as handle:
        lr = {int(r["step"]): float(r["lr-Adam"]) for r in csv.DictReader(handle) if r["lr-Adam"]}
    assert lr[0] == pytest.approx(0.003)
    assert lr[5] == pytest.approx(0.003 * (1 - 0.8 * 5 / 10))
    assert lr[9] == pytest.approx(0.003 * (1 - 0.8 * 9 / 10))


@pytest.mark.parametrize(
    "overrides",
    [["experiment=addition_cpu"], ["task=translation"], ["task=parity"], ["task=enwik8"]],
    ids=["a preset", "translation", "parity", "enwik8"],
)
def test_only_the_default_experiment_on_addition_gets_the_decay_and_the_3000_steps(
    overrides, tmp_path
):
    """A preset keeps its own budget and schedule; the default experiment on another task runs
    the root's 5,000 steps at a constant rate (an overfit-to-BLEU-100 translation run needs
    them), as before."""
    cfg = compose_train(overrides, tmp_path)
    assert cfg.optim.scheduler is None
    root = OmegaConf.load(CONF / "trainer" / "default.yaml").max_steps
    preset = CONF / "experiment" / f"{cfg.hydra.runtime.choices.experiment}.yaml"
    stated = OmegaConf.load(preset).get("trainer", {}).get("max_steps", root)
    assert cfg.trainer.max_steps == stated


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "optim.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:7}",
            {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 7},
        ),
        ("optim.scheduler=null", None),
    ],
    ids=["another scheduler", "none"],
)
def test_a_command_line_scheduler_replaces_the_default_experiments_whole(
    override, expected, tmp_path
):
    """Not merged into LinearLR's keys (a StepLR given start_factor would not build)."""
    cfg = compose_train([override], tmp_path)
    scheduler = cfg.optim.scheduler
    got = OmegaConf.to_container(scheduler, resolve=True) if scheduler is not None else None
    assert got == expected


@pytest.mark.parametrize(("solved_above", "steps"), [(-1.0, 4), (1.0, 12)])
def test_the_default_experiment_ends_at_the_first_validation_above_solved(
    solved_above, steps, tmp_path
):
    """Above the task's solved_above at the first validation (step 4): the run ends there,
    completed, and is tested; never above it (1.0: strictly above cannot happen): max_steps."""
    small = [
        "logger=none",
        "model.net.hidden_size=8",
        "model.net.num_layers=1",
        "task.datamodule.batch_size=4",
        "task.datamodule.batches_per_epoch=4",
        "task.datamodule.val_size=8",
        "task.datamodule.test_size=8",
        "trainer.max_steps=12",
        f"task.solved_above={solved_above}",
    ]
    metrics = train(compose_train(small, tmp_path))
    assert (metrics["global_step"], metrics["status"]) == (steps, "completed")
    assert "test/acc" in metrics
    # the record names the seed the run used, here the default's (no seed on the command line)
    assert metrics["seed"] == compose_train(small, tmp_path).seed


def test_the_n_lstm_is_spelt_gridnd_everywhere():
    """``model=gridNd`` is the paper's N-LSTM (N counts depth): GridLSTM(grid_dims=N - 1)."""
    assert compose_train(["model=grid1d", "task=parity"]).model.net.grid_dims == 0
    assert compose_train(["model=grid2d"]).model.net._target_ == "gridlstm.nn.Grid2dLSTM"
    grid3d = compose_train(["model=grid3d", "task=mnist"]).model.net
    assert grid3d._target_ == "gridlstm.nn.Grid3dImageEncoder"


def test_a_0_2_model_name_is_refused_in_one_line_with_the_choices():
    """``model=grid_1lstm`` (the 1-LSTM's name before 0.3) is an unknown option since 0.4: one
    line that lists the choices, grid1d among them."""
    from gridlstm.run.config import compose_problem

    problem = compose_problem(["model=grid_1lstm", "task=parity"], CONF)
    assert problem is not None and "grid_1lstm" in problem and "grid1d" in problem
    assert "\n" not in problem
    assert compose_problem(["model=grid1d", "task=parity"], CONF) is None


@pytest.mark.parametrize(
    "argv", [["~experiment"], ["experiment=null"], ["-m", "~experiment", "seed=1,2"]]
)
def test_removing_the_experiment_preset_is_refused_naming_the_presets(argv):
    """train.yaml picks per-task settings by the preset's name: a run without one gets one
    line naming the presets, not Hydra's interpolation error."""
    from gridlstm.run.config import compose_problem

    problem = compose_problem(argv, CONF)
    arg = next(a for a in argv if "experiment" in a)
    assert problem.startswith(f"{arg}: every run takes an experiment preset")
    choices = problem.split("choices: ")[1].split(", ")
    assert choices == sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert {"default", "addition_paper", "deep_tied"} <= set(choices)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_states_the_facts_its_tables_report(task, tmp_path):
    """The tables read a task's size option and the paper's claim from the job's saved config
    (conf/task/*.yaml), not from a list keyed by task name."""
    cfg = compose_train([f"task={task}"], tmp_path)
    assert cfg.task.size_option in cfg.task.datamodule, task
    user_data = ("text", "sequences", "images")  # files a user brings: no paper claim
    assert task in user_data or cfg.task.paper.endswith(".")


def test_the_check_and_the_run_build_the_trainer_from_one_function(monkeypatch, tmp_path):
    """A hardware key is turned into Trainer arguments in one place: the start-up check
    tests exactly what the run builds (gridlstm.run.trainer_arguments)."""
    from lightning.pytorch.strategies import Strategy

    from gridlstm.run import build, config
    from gridlstm.run import trainer_arguments as arguments

    calls = []

    def spy(trainer, hardware):
        calls.append(hardware.name)
        return arguments.trainer_arguments(trainer, hardware)

    monkeypatch.setattr(config, "trainer_arguments", spy)
    monkeypatch.setattr(build, "trainer_arguments", spy)
    cfg = compose_train(["hardware=cpu", "hardware.threads=1"], tmp_path)
    config.check_hardware(cfg)
    build.build_trainer(cfg.trainer, cfg.hardware, [], [])
    assert calls == ["cpu", "cpu"]
    kwargs = arguments.trainer_arguments(cfg.trainer, cfg.hardware)
    assert not set(arguments.SUITE_KEYS) & set(kwargs)
    assert kwargs["max_steps"] == cfg.trainer.max_steps and kwargs["accelerator"] == "cpu"
    ddp = compose_train(["hardware=ddp_cpu"], tmp_path)
    assert isinstance(arguments.trainer_arguments(ddp.trainer, ddp.hardware)["strategy"], Strategy)


def test_a_sweep_preset_without_m_says_so_and_what_m_would_run():
    """`python train.py experiment=addition_cpu` runs one job of a six-job sweep: one line
    says so before any work; with -m, or for a preset that is no sweep, nothing is said."""
    from gridlstm.run.config import sweep_note

    conf = Path(__file__).resolve().parents[1] / "conf"
    note = sweep_note(["experiment=addition_cpu"], conf)
    assert note is not None and "\n" not in note
    assert "6 jobs" in note and "python train.py -m experiment=addition_cpu" in note
    assert sweep_note(["experiment=addition_cpu", "-m"], conf) is None
    assert sweep_note([], conf) is None
    assert sweep_note(["experiment=deep_tied"], conf) is None  # one run, no sweep


def test_a_short_run_saves_its_one_checkpoint_without_lightnings_weights_only_note(
    tmp_path, capfd, caplog
):
    """A run that never validated saves the checkpoint its test reads; Lightning printed
    "weights_only was not set, defaulting to False" there, which reads as an unsafe load."""
    import logging

    overrides = ["task=addition", "debug=fast_dev_run", "hardware=cpu"]
    small = [o for o in task_overrides("addition", tmp_path) if not o.startswith("trainer.")]
    with caplog.at_level(logging.INFO):
        train(compose_train(overrides + small, tmp_path))
    out, err = capfd.readouterr()
    assert "weights_only" not in out + err + caplog.text
    assert list(tmp_path.rglob("best-step*.ckpt"))  # the one checkpoint fast_dev_run writes


@pytest.mark.parametrize(
    "override", ["model=grid2d,[", "trainer.max_steps=range(1", "seed=choice(1,2"]
)
def test_a_sweep_override_hydra_cannot_parse_is_one_line_naming_it(override):
    from gridlstm.run.config import compose_problem

    problem = compose_problem(["-m", "seed=1,2", override], CONF)
    assert problem is not None and problem.startswith(f"{override}: not a sweep override")
    assert "\n" not in problem and "key=a,b,c" in problem


def test_a_sweep_hydra_can_parse_is_left_to_hydra():
    from gridlstm.run.config import compose_problem

    argv = ["-m", "seed=1,2", "trainer.max_steps=range(1,3)", "hydra/launcher=basic"]
    assert compose_problem(argv, CONF) is None

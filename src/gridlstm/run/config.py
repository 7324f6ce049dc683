"""Start-up checks on the composed config: fail in one line, before any work.

Hydra itself rejects unknown config-group options (naming the available ones); this module adds
what Hydra cannot know: which models fit which tasks, and the value checks done by the
constructors of the data module and the backbone, reported with the config group they came from.
Every check of a run's config lives here (the sweep's direction and the validation interval
included), so that all of them run before the run's first line of output.

Longer than 400 lines because it is the one home of those checks; each is a small function.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from gridlstm.run import hydra_runtime
from gridlstm.run.errors import ConfigError
from gridlstm.run.trainer_arguments import trainer_arguments

T = TypeVar("T")


def group_options(conf: Path | None, group: str, keep: Callable[[DictConfig], bool]) -> list[str]:
    """The options of a config group whose file ``keep`` accepts (none without a conf)."""
    if conf is None:
        return []
    paths = sorted((conf / group).glob("*.yaml"))
    return [path.stem for path in paths if keep(OmegaConf.load(path))]


def models_for(input_kind: str, conf: Path | None) -> list[str]:
    return group_options(conf, "model", lambda model: model.get("input_kind") == input_kind)


def check_compatible(cfg: DictConfig, conf: Path | None = None) -> None:
    """The model must accept the kind of input the task provides (vector, sequence, ...)."""
    model_kind, task_kind = cfg.model.get("input_kind"), cfg.task.get("input_kind")
    if model_kind == task_kind:
        return
    choices = ", ".join(models_for(task_kind, conf or hydra_runtime.config_dir())) or "none"
    raise ConfigError(
        f"model={cfg.model.name} takes {model_kind} input but task={cfg.task.name} provides "
        f"{task_kind} input; models for task={cfg.task.name}: {choices}"
    )


def tasks_with_option(option: str, conf: Path | None) -> list[str]:
    """Task configs whose data module sets ``option`` (e.g. feedback: the tasks with an
    answer)."""
    return group_options(conf, "task", lambda task: option in (task.get("datamodule") or {}))


def check_feedback_applies(cfg: DictConfig, conf: Path | None = None) -> None:
    """``feedback`` (what is read during an answer) means nothing to a task without one."""
    datamodule = cfg.task.get("datamodule") or {}
    if "feedback" not in datamodule:
        return
    tasks = tasks_with_option("feedback", conf or hydra_runtime.config_dir())
    if cfg.task.name in tasks:
        return
    raise ConfigError(
        f"task.datamodule.feedback={datamodule.get('feedback')}: task={cfg.task.name} has no "
        f"answer to feed back; feedback applies to {', '.join(tasks) or 'no task'}"
    )


def check_launch() -> None:
    from gridlstm.run import launch  # Lightning: imported when a run starts, not for --help

    if launch.externally_launched() and hydra_runtime.shared_run_id() is None:
        raise ConfigError(
            "several processes were launched externally but they share no run id, so they "
            "would write to different directories; set GRIDLSTM_RUN_ID (same value on every "
            "rank), run under srun, or use torchrun --rdzv-id=<id> / --standalone"
        )


def _first_line(error: BaseException) -> str:
    """The error's first line (and the next, when the first only introduces it)."""
    lines = [" ".join(line.split()) for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = lines[0] + (" " + lines[1] if lines[0].endswith(":") and len(lines) > 1 else "")
    return text[:300]


def check_trainer_options(cfg: DictConfig) -> None:
    """Values the Trainer would accept but that make a run meaningless, and unknown keys."""
    import inspect

    import lightning as L

    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    known = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    for key in trainer:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {', '.join(f'trainer.{c}' for c in close)}?" if close else ""
            raise ConfigError(f"trainer.{key}: not an argument of lightning.Trainer{hint}")
    for key in ("max_epochs", "min_epochs", "min_steps"):
        value = trainer.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < -1
        ):
            raise ConfigError(f"trainer.{key}={value}: give an integer (-1: no limit) or null")
    steps, epochs = trainer.get("max_steps", -1), trainer.get("max_epochs")
    if isinstance(steps, bool) or not isinstance(steps, int) or (steps < 1 and steps != -1):
        raise ConfigError(
            f"trainer.max_steps={steps}: give a number of optimizer steps >= 1 "
            "(or -1 to stop by trainer.max_epochs)"
        )
    if steps == -1 and (epochs is None or epochs == -1):
        raise ConfigError(
            "trainer.max_steps=-1 and trainer.max_epochs=-1: the run would never end "
            "(the synthetic tasks draw fresh data forever); set one of them"
        )
    for key in ("val_check_interval", "limit_val_batches"):
        value = trainer.get(key, 1.0)
        fraction = isinstance(value, float) and 0.0 < value <= 1.0
        count = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not (fraction or count):
            raise ConfigError(
                f"trainer.{key}={value}: give a fraction in (0, 1] or a batch count >= 1 "
                "(runs choose their best checkpoint and report val metrics by validating)"
            )
    for key in ("log_every_n_steps", "check_val_every_n_epoch", "accumulate_grad_batches"):
        value = trainer.get(key, 1)
        if value is None and key == "check_val_every_n_epoch":  # val_check_interval counts
            continue  # batches across epochs (the translation presets)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"trainer.{key}={value}: give an integer >= 1")
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0
    ):
        raise ConfigError(
            f"trainer.gradient_clip_val={clip}: give a norm > 0, or 0 / null for no clipping"
        )


def check_seed(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed}: give an integer in [0, 2**32 - 1]")


PRINT_CONFIG = ("short", "full", "false")


def check_print_config(cfg: DictConfig) -> None:
    value = cfg.get("print_config", "short")
    if isinstance(value, bool):
        return  # true: full (as before), false: nothing
    if str(value) not in PRINT_CONFIG:
        raise ConfigError(f"print_config={value}: choose one of {', '.join(PRINT_CONFIG)}")


def check_hardware(cfg: DictConfig) -> None:
    """The accelerator exists here, and the Trainer accepts hardware x trainer options."""
    import lightning as L
    import torch

    from gridlstm.run import console, cuda_graphs, denormals, hydra_runtime

    hardware = OmegaConf.to_container(cfg.hardware, resolve=True)
    name = hardware.pop("name", cfg.hardware.get("name"))
    hardware.pop("threads", None)
    denormals.check(hardware.pop("flush_denormal", False))
    accelerator = str(hardware.get("accelerator", "auto"))
    accumulate = cfg.get("trainer", {}).get("accumulate_grad_batches", 1)
    cuda_graphs.check(hardware.pop("cuda_graphs", False), accelerator, hardware, accumulate)
    on_the_node = False  # the GPUs are the cluster node's, checked there by the job itself
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        if not hydra_runtime.submits_to_cluster():
            raise ConfigError(
                f"hardware={name}: no CUDA GPU is available on this machine "
                "(torch.cuda.is_available() is False); use hardware=cpu"
            )
        on_the_node = True
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"hardware={name}: Apple's MPS is not available here; use hardware=cpu")
    devices = hardware.get("devices", "auto")
    valid_list = (
        isinstance(devices, list)
        and devices
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
    )
    valid_count = (
        isinstance(devices, int)
        and not isinstance(devices, bool)
        and (devices >= 1 or devices == -1)
    )
    if not (valid_list or valid_count or devices == "auto"):
        raise ConfigError(
            f"hardware.devices={devices}: give a count >= 1, -1 (all), 'auto', or a list of "
            "device indices such as [0, 1]"
        )
    several = devices == -1 or (valid_count and devices > 1) or (valid_list and len(devices) > 1)
    if several and not isinstance(hardware.get("strategy"), dict):
        raise ConfigError(
            f"hardware.devices={devices}: several processes need a strategy that starts them "
            "under Hydra; use hardware=ddp_cpu (CPU) or hardware=ddp (GPUs), or devices=1"
        )
    try:
        kwargs = trainer_arguments(cfg.trainer, cfg.hardware)
        if on_the_node:  # the options are checked here as far as this machine can
            kwargs.update(accelerator="cpu", devices=1)
        quiet = dict(
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with console.lightning_info_silenced():
            L.Trainer(**{**kwargs, **quiet})
    except Exception as error:
        cause = error.__cause__ or error
        raise ConfigError(f"hardware={name} / trainer: {_first_line(cause)}") from None


def check_device(value: str, option: str = "device") -> None:
    """A torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"{option}={value}: not a device; give cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{option}={value}: no CUDA device is available; use {option}=cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{option}={value}: this machine has cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option}={value}: Apple's MPS is not available; use {option}=cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{option}={value}: give cpu, cuda, cuda:N or mps")


def check_writable(path: Path, option: str, file: bool = False) -> None:
    """``path``, a directory (or with ``file``, a file) this user can create or write: the
    nearest existing ancestor of it (of its directory) is a writable directory. Nothing is
    created."""
    if file and Path(path).is_dir():
        raise ConfigError(f"{option}={path}: a directory; give a file name")
    parent = Path(path).absolute().parent if file else Path(path).absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option}={path}: cannot be created ({parent} is not a writable directory); "
            "choose a place you can write to"
        )
    # Permissions say yes where mkdir fails: a read-only mount, or a file system of the kernel's
    # (/proc, /sys: no blocks). Asked of the mount, not tried: a refused run touches nothing.
    mount = os.statvfs(parent) if hasattr(os, "statvfs") else None  # not on Windows
    if mount and (mount.f_flag & os.ST_RDONLY or mount.f_blocks == 0):
        what = "a read-only mount" if mount.f_flag & os.ST_RDONLY else "a kernel file system"
        raise ConfigError(
            f"{option}={path}: cannot be created ({parent} is on {what}); choose a place you "
            "can write to"
        )


def check_optimizer(cfg: DictConfig) -> None:
    """The optimizer and scheduler configs build (on a stand-in parameter)."""
    import torch
    from hydra.utils import instantiate

    try:
        optimizer = instantiate(cfg.optim.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    except Exception as error:
        raise ConfigError(f"optim.optimizer: {_first_line(error.__cause__ or error)}") from None
    if cfg.optim.get("scheduler"):
        try:
            instantiate(cfg.optim.scheduler)(optimizer)
        except Exception as error:
            raise ConfigError(f"optim.scheduler: {_first_line(error.__cause__ or error)}") from None


NUMBER_TYPES = {float: "a number", int: "an integer", bool: "true or false"}


def _scalar_type(hint: Any) -> type | None:
    """float, int or bool when ``hint`` is one of them (or Optional of one), else None."""
    if hint in NUMBER_TYPES:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in NUMBER_TYPES else None


def check_value_types(node: DictConfig | None, where: str) -> None:
    """A text value where the constructor takes a number or a flag, named by its key; a value
    copied from another key (``input_size: ${...hidden_size}``) is named at that key."""
    from hydra.utils import get_class

    if node is None or "_target_" not in node:
        return
    try:
        cls = get_class(node._target_)
        hints: dict[str, Any] = {}
        for base in reversed(cls.__mro__):  # a subclass's **options reach its bases' __init__
            if "__init__" in vars(base) and base.__module__.startswith("gridlstm."):
                hints.update(typing.get_type_hints(base.__init__))
    except Exception:
        return
    for key, value in OmegaConf.to_container(node, resolve=True).items():
        wanted = _scalar_type(hints.get(key))
        if wanted is None or not isinstance(value, str) or OmegaConf.is_interpolation(node, key):
            continue
        raise ConfigError(
            f"{where}.{key}={value}: expected {NUMBER_TYPES[wanted]} ({wanted.__name__})"
        )


# Lightning logger -> (modules it needs, any one of them; this suite's extra that installs one).
LOGGER_PACKAGES = {
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard"),
    "MLFlowLogger": (("mlflow",), "mlflow"),
}


def check_loggers(cfg: DictConfig) -> None:
    """A logger whose package is missing: one line naming the extra, before any work
    (Lightning would fail once the Trainer starts)."""
    import importlib.util

    for name, logger in (cfg.get("logger") or {}).items():
        target = str((logger or {}).get("_target_", ""))
        for cls, (modules, extra) in LOGGER_PACKAGES.items():
            if target.endswith(cls) and not any(importlib.util.find_spec(m) for m in modules):
                raise ConfigError(
                    f'logger={name} needs the {modules[0]} package: pip install -e ".[{extra}]" '
                    "(or choose logger=csv, wandb, wandb_csv, none)"
                )


def check_components(cfg: DictConfig) -> None:
    """A callback or logger entry without ``_target_``: a preset sets a knob of a component
    that the chosen group no longer holds (``experiment=deep_tied callbacks=solved`` keeps
    ``callbacks.depth_probe.every_n_steps`` alone). Lightning would fail on it mid-run."""
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node is None or (isinstance(node, DictConfig) and "_target_" in node):
                continue
            keys = ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else node
            whole = [
                str(k)
                for k, v in cfg[group].items()
                if isinstance(v, DictConfig) and "_target_" in v
            ]
            raise ConfigError(
                f"{group}.{name} sets {keys} but names no component (_target_): the chosen "
                f"{group} group does not hold {name}; choose a {group} option that does, or "
                f"drop it with ~{group}.{name} (the {group} here: {', '.join(whole) or 'none'})"
            )


def check_solved_above(cfg: DictConfig) -> None:
    """``task.solved_above`` and any callback's ``stopping_threshold`` (callbacks=solved, the
    default experiment): a number or null. Lightning would compare a text value with the
    metric only at the first validation, after the work has started."""
    values = [("task.solved_above", cfg.task.get("solved_above"))]
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "stopping_threshold" in node:
            values.append((f"callbacks.{name}.stopping_threshold", node.stopping_threshold))
    for key, value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(
                f"{key}={value}: expected a number or null (the main metric {cfg.task.monitor} "
                "above which callbacks=solved stops the run; null: never)"
            )


def check_run(cfg: DictConfig) -> None:
    """Everything a run will hand to Lightning and torch, checked before any work."""
    check_components(cfg)
    check_solved_above(cfg)
    check_loggers(cfg)
    check_value_types(cfg.model.get("net"), "model.net")
    check_value_types(cfg.task.get("datamodule"), "task.datamodule")
    check_feedback_applies(cfg)
    check_seed(cfg)
    check_print_config(cfg)
    check_trainer_options(cfg)
    check_optimizer(cfg)
    check_hardware(cfg)


def output_dir_problem(argv: list[str], cwd: Path | None = None) -> str | None:
    """A one-line message if the run or sweep directory cannot be created (checked before
    Hydra tries to, which would end in a traceback)."""
    cwd = cwd or Path.cwd()
    given = False
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in ("hydra.run.dir", "hydra.sweep.dir") or not value or "${" in value:
            continue
        given = True
        path = cwd / Path(value.strip("'\"")).expanduser()
        try:  # nothing is created here: a refused run leaves no directory behind
            check_writable(path, key)
        except ConfigError as error:
            return str(error)
    if not given and not os.access(cwd, os.W_OK | os.X_OK):
        return (
            f"runs are written under {cwd} (outputs/, multirun/), which is not writable; run "
            "from a writable directory or set hydra.run.dir / hydra.sweep.dir"
        )
    return None


def _one_line(text: str) -> str:
    """Hydra's multi-line message as one line: indented lists joined with commas."""
    parts: list[str] = []
    items: list[str] = []
    for raw in text.splitlines():
        if raw.startswith(("\t", "    ")) and parts:
            items.append(raw.strip())
            continue
        if items:
            parts[-1] += " " + ", ".join(items)
            items = []
        if raw.strip():
            parts.append(raw.strip())
    if items:
        parts[-1] += " " + ", ".join(items)
    return "; ".join(parts)


def preset_removed_problem(argv: list[str], conf: Path) -> str | None:
    """A line for a command line that removes the experiment preset (``~experiment``,
    ``experiment=null``): train.yaml picks the per-task settings by the preset's name
    (``experiment_task: ${experiment}_${task}``), so a run needs one; Hydra's own message
    names neither the cause nor the choices."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "~experiment" or (key.lstrip("+") == "experiment" and value in ("", "null")):
            choices = ", ".join(sorted(p.stem for p in (conf / "experiment").glob("*.yaml")))
            return (
                f"{arg}: every run takes an experiment preset (experiment=default is the root "
                f"settings, stopping once solved); choices: {choices}"
            )
    return None


def sweep_syntax(argv: list[str]) -> str | None:
    """A sweep's override that Hydra's grammar cannot parse (``seed=1,[``), as one line: Hydra
    would print it over four lines with exit code 1 once the sweep starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = [arg for arg in argv if not arg.startswith("-")]
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as error:
            first = _one_line(str(error)).split("See https://")[0].strip().rstrip(";")
            return (
                f"{override}: not a sweep override Hydra can parse ({first}); a sweep is "
                "key=a,b,c, key=range(1,4) or key=choice(a,b)"
            )
    return None


def compose_problem(argv: list[str], conf: Path) -> str | None:
    """Hydra's own refusals (an unknown config-group option, a key that is not in the config,
    an override that does not parse) as one line, before Hydra would print them over several
    lines with exit code 1; a removed preset in any command line. Sweeps (``-m``) and
    Hydra's flags (``--help``, ``--cfg``) are otherwise left to Hydra."""
    if problem := preset_removed_problem(argv, conf):
        return problem
    if any(arg in ("-m", "--multirun") for arg in argv) and (problem := sweep_syntax(argv)):
        return problem
    if any(arg.startswith("-") for arg in argv):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="train"):
            compose("train", overrides=argv, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        message = _one_line(str(error)).split("; Config search path")[0]  # where Hydra looked
        cause = error.__cause__
        if cause is not None and str(cause).strip():
            first = str(cause).strip().splitlines()[0]
            message = message if first in message else f"{message} ({first})"
        return message
    return None


def sweep_note(argv: list[str], conf: Path) -> str | None:
    """One line where a sweep preset (one with ``hydra.sweeper.params``) runs without ``-m``:
    Hydra then runs one job at the preset's defaults, which reads as the whole table
    running. Why a note, not a refusal: one job of a preset is a fair thing to run."""
    if any(arg.startswith("-") for arg in argv):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(
            config_dir=str(Path(conf).resolve()), version_base="1.3", job_name="train"
        ):
            cfg = compose("train", overrides=argv, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError):  # compose_problem's to name
        return None
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    if not params:
        return None
    counts = [len(str(v).split(",")) if "(" not in str(v) else None for v in params.values()]
    jobs = "" if None in counts else f": {math.prod(c for c in counts if c)} jobs"
    swept = " x ".join(str(k) for k in params)
    command = " ".join(["python train.py -m", *argv])
    return (
        f"note: this preset is a sweep over {swept}{jobs}, which runs with -m ({command}); "
        "without -m, one job runs at the preset's defaults"
    )


# Resolvers a saved config may call when a tool reads it back (tables, evaluate): OmegaConf's
# pure selection and container creation (what oc.create builds is checked after resolution
# like any stored node: `checkpoints.plain_tree`). Anything else (oc.env, oc.decode, a
# resolver of another program or one this suite retired) stays literal text: a tool never
# copies the environment into its output.
SAFE_RESOLVERS = frozenset({"oc.select", "oc.create"})
RESOLVER_CALL = re.compile(r"\$\{\s*([\w.\-]+)\s*:")


def defuse(node: Any) -> Any:
    """A plain container with every interpolation through an unsafe resolver escaped."""
    if isinstance(node, dict):
        return {key: defuse(value) for key, value in node.items()}
    if isinstance(node, list):
        return [defuse(value) for value in node]
    if isinstance(node, str) and set(RESOLVER_CALL.findall(node)) - SAFE_RESOLVERS:
        return node.replace("${", "\\${")  # OmegaConf's escape: the text is kept as is
    return node


def literal(node: Any) -> Any:
    """A plain container with every ``${`` escaped: text stays text when read again."""
    if isinstance(node, dict):
        return {key: literal(value) for key, value in node.items()}
    if isinstance(node, list):
        return [literal(value) for value in node]
    return node.replace("${", "\\${") if isinstance(node, str) else node


def resolved(cfg: DictConfig) -> DictConfig:
    """``cfg`` with its interpolations resolved once, for good: text that an escaped
    interpolation left behind (``${oc.env:...}`` from `defuse`) stays text afterwards."""
    return OmegaConf.create(literal(OmegaConf.to_container(cfg, resolve=True)))


DIRECTIONS = {"max": "maximize", "min": "minimize"}


def direction_problem(sweeper: Any, monitor: str, mode: str) -> str | None:
    """A one-line message if an Optuna sweep optimises the task's metric the wrong way."""
    if sweeper is None or "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    direction = sweeper.get("direction")
    if isinstance(direction, str) and direction != DIRECTIONS.get(mode):
        return (
            f"hydra.sweeper.direction={direction}, but train.py returns {monitor}, which is "
            f"best at its {mode}imum: set hydra.sweeper.direction={DIRECTIONS.get(mode)}"
        )
    return None


class SweepConfigError(ConfigError):
    """A mistake in the sweep itself: every job would fail, so the sweep stops at once."""


def check_sweeper(cfg: DictConfig) -> None:
    """An Optuna sweep must optimise the task's main metric in its direction."""
    sweeper = hydra_runtime.sweeper()
    if sweeper is not None:
        problem = direction_problem(sweeper, cfg.task.monitor, cfg.task.monitor_mode)
        if problem:
            raise SweepConfigError(problem)


def interval_message(cfg: DictConfig, batches: int) -> str:
    return (
        f"trainer.val_check_interval={cfg.trainer.val_check_interval}: an epoch of "
        f"task={cfg.task.name} has {batches} training batches; use at most {batches}, a "
        "fraction of an epoch in (0, 1], or trainer.check_val_every_n_epoch=null to count "
        "batches across epochs"
    )


def check_val_interval(cfg: DictConfig, datamodule: Any) -> None:
    """An integer ``val_check_interval`` longer than an epoch, refused before any output where
    the data module knows its epoch (the synthetic tasks); Lightning finds the others once
    the data is set up (`interval_problem`)."""
    interval = cfg.trainer.get("val_check_interval")
    batches = getattr(datamodule, "batches_per_epoch", None)
    counted_per_epoch = cfg.trainer.get("check_val_every_n_epoch", 1) is not None
    if (
        isinstance(interval, int)
        and not isinstance(interval, bool)
        and isinstance(batches, int)
        and counted_per_epoch
        and interval > batches
    ):
        raise ConfigError(interval_message(cfg, batches))

"""Builders that train and evaluate share: the task's data module and LightningModule (with
a parameter budget solved first), the configured callbacks and the Trainer.

Why here: re-scoring a checkpoint (`gridlstm.run.evaluation`) must build exactly the module
training built, without depending on the training procedure (`gridlstm.run.training`).
Each builder takes the config sub-trees it reads.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from gridlstm.nn.sizing import width_for_budget
from gridlstm.run import hydra_runtime, sweeps
from gridlstm.run.config import check_device
from gridlstm.run.console import lightning_info_silenced
from gridlstm.run.errors import ConfigError
from gridlstm.run.trainer_arguments import trainer_arguments

log = logging.getLogger(__name__)
T = TypeVar("T")


def build_datamodule(task: DictConfig) -> L.LightningDataModule:
    """The task's data module (``task.datamodule``)."""
    return instantiate(task.datamodule)


def build_callbacks(
    callbacks_cfg: DictConfig | None, has_logger: bool
) -> tuple[list[Callback], list[str]]:
    """The configured callbacks (``callbacks``), and the names of those left out (they need
    a logger)."""
    callbacks, skipped = [], []
    for name, callback_cfg in (callbacks_cfg or {}).items():
        if callback_cfg is None:
            continue
        callback = instantiate(callback_cfg)
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            skipped.append(name)
            continue
        callbacks.append(callback)
    return callbacks, skipped


def build_trainer(
    trainer: DictConfig, hardware_cfg: DictConfig, loggers: list, callbacks: list[Callback]
) -> L.Trainer:
    """The training Trainer: ``trainer`` options and the ``hardware`` group's accelerator,
    devices, precision and strategy."""
    kwargs = one_gpu_per_job(trainer_arguments(trainer, hardware_cfg))
    return L.Trainer(**kwargs, logger=loggers or False, callbacks=callbacks)


def build_module(
    cfg: DictConfig, datamodule: L.LightningDataModule, net: dict[str, Any] | None = None
) -> L.LightningModule:
    """The task's LightningModule: backbone and optimizer configs, what the data says
    (vocabulary, sizes) and the task's own module options (``task.module.*``). With a
    ``param_budget``, the backbone's width is solved first (`solve_width`)."""
    if net is None and cfg.get("param_budget"):
        width, params = solve_width(cfg, datamodule)
        log.info(
            "param_budget=%s: hidden_size %d gives %d parameters", cfg.param_budget, width, params
        )
        module = build_module(cfg, datamodule, net_at(cfg, width))
        module.extra_metrics = {**getattr(module, "extra_metrics", {}), "hidden": width}
        return module
    options = OmegaConf.to_container(cfg.task.module, resolve=True)
    module_class = get_class(options.pop("_target_"))
    return module_class(
        net=net or OmegaConf.to_container(cfg.model.net, resolve=True),
        optimizer=OmegaConf.to_container(cfg.optim.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.optim.scheduler, resolve=True)
        if cfg.optim.get("scheduler")
        else None,
        **datamodule.module_kwargs(),
        **options,
    )


def nets_at(cfg: DictConfig) -> Callable[[int], dict[str, Any]]:
    """``width -> `` the backbone config with ``hidden_size=width`` (what follows it, e.g. an
    ``input_size: ${.hidden_size}``, follows), resolved inside the whole config, so that a
    value the net reads from the root (``priority: ${grid2d_priority}``) keeps its source.
    One copy of the config serves every width: copying a composed config (Hydra's part
    included) took most of a budget's width search."""
    copied = copy.deepcopy(cfg)

    def at(width: int) -> dict[str, Any]:
        with open_dict(copied):
            copied.model.net.hidden_size = width
        return OmegaConf.to_container(copied.model.net, resolve=True)

    return at


def net_at(cfg: DictConfig, width: int) -> dict[str, Any]:
    """`nets_at` for one width."""
    return nets_at(cfg)(width)


def solve_width(cfg: DictConfig, datamodule: L.LightningDataModule) -> tuple[int, int]:
    """(hidden_size, parameters) of the whole model closest to ``param_budget``: the model is
    built at candidate widths (on the meta device: shapes only), so every architecture, tying
    mode and head is counted as it is, with no formula per model name."""
    budget = cfg.param_budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"param_budget must be a number of parameters >= 1, got {budget!r}")
    multiple = int(cfg.model.net.get("heads", 1) or 1)  # attention heads divide the width
    at = nets_at(cfg)
    return width_for_budget(
        lambda width: build_module(cfg, datamodule, at(width)), budget, multiple
    )


def processes_per_machine(hardware: DictConfig) -> int:
    """Training processes on this machine that divide its CPU cores: this run's (ddp_cpu: one
    per device) times the jobs a parallel launcher runs side by side."""
    devices = hardware.get("devices", 1)
    own = 1
    if hardware.get("accelerator") == "cpu" and isinstance(devices, int) and devices > 1:
        own = devices
    return own * sweeps.parallel_jobs(hydra_runtime.launcher())


def unused_gpu(hardware: DictConfig) -> str | None:
    """One line when a CUDA GPU is visible and the run trains on the CPU: a job given a GPU
    node (a Slurm allocation) with ``hardware=cpu`` would otherwise hold the GPU and train on
    the node's CPU without a word. None where there is nothing to say."""
    if hardware.get("accelerator") != "cpu" or not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    return (
        f"hardware={hardware.get('name', 'cpu')}: training on the CPU although {count} CUDA "
        f"GPU(s) are visible ({torch.cuda.get_device_name(0)}); hardware=gpu trains on one, "
        "hardware=ddp on all"
    )


def one_gpu_per_job(hardware: dict[str, Any]) -> dict[str, Any]:
    """Under a parallel local launcher, a one-GPU job takes GPU (job number mod GPUs) instead
    of every job sharing GPU 0."""
    if (
        sweeps.parallel_jobs(hydra_runtime.launcher()) > 1
        and hardware.get("accelerator") in ("gpu", "cuda")
        and hardware.get("devices") == 1
        and torch.cuda.is_available()
    ):
        job = hydra_runtime.job_number()
        hardware["devices"] = sweeps.gpu_for_job(job, torch.cuda.device_count())
    return hardware


def build_scoring_trainer(hardware_cfg: DictConfig, device: str | None = None) -> L.Trainer:
    """The Trainer that re-scores a checkpoint: one process on the stored (or overridden)
    accelerator and precision, or one line. ``device`` (cpu, cuda, cuda:N) replaces the
    stored accelerator."""
    hardware = OmegaConf.to_container(hardware_cfg, resolve=True)
    accelerator = str(hardware.get("accelerator", "cpu"))
    devices: int | list[int] = 1
    if device is not None:
        check_device(device)
        kind, _, index = device.partition(":")
        accelerator = "cpu" if kind == "cpu" else "gpu"
        devices = [int(index)] if index else 1
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"hardware.accelerator={accelerator}: no CUDA GPU is available on this machine; "
            "re-score with hardware.accelerator=cpu"
        )
    try:
        with lightning_info_silenced():
            return L.Trainer(
                accelerator=accelerator,
                devices=devices,
                precision=hardware.get("precision", "32-true"),
                logger=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=False,
                use_distributed_sampler=False,
            )
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"hardware: {first}") from None


def guarded(what: str, factory: Callable[[], T]) -> T:
    """Call ``factory``; a constructor's ValueError becomes a one-line ConfigError naming
    ``what`` (the config option that chose it, e.g. ``task=addition``)."""
    try:
        return factory()
    except InstantiationException as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        raise ConfigError(f"{what}: {cause}") from error
    except ValueError as error:
        raise ConfigError(f"{what}: {error}") from error

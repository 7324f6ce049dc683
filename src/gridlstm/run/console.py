"""A quiet, informative console: the composed config as a tree, a progress bar that counts
steps (a plain line at a steady interval where stdout is a log file), a model summary without
Lightning's always-zero FLOPs line, and known harmless third-party messages filtered where
they are raised (each filter says why)."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichModelSummary, RichProgressBar
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# Shown first, in this order; other top-level keys follow.
CONFIG_ORDER = ("model", "task", "hardware", "trainer", "optim", "callbacks", "logger", "seed")

# (message regex, why it is harmless here)
HARMLESS_WARNINGS = (
    # Lightning's own _pytree shim calls a torch API that torch deprecated; nothing we call.
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning internals"),
    # Synthetic tasks are IterableDatasets with a __len__ for the progress bar; each worker
    # draws its own stream (gridlstm.data.synthetic), which is what the warning asks for.
    (r"Your `IterableDataset` has `__len__` defined", "workers are configured independently"),
    # Short epochs (tests, smoke runs) log less often than log_every_n_steps; intended.
    (r"The number of training batches .* is smaller than the logging interval", "short epochs"),
    # Checkpoint callbacks look for the main metric before the first validation has run.
    (r".*could not find the monitored key in the returned metrics", "before first validation"),
    # nn.Transformer with norm_first=True cannot use nested tensors; a speed hint only.
    (r"enable_nested_tensor is True, but self.use_nested_tensor is False", "pre-norm"),
    # With an on-exception checkpoint callback (our InterruptCheckpoint), Lightning >= 2.6
    # turns fit(ckpt_path=None) into "last" and says so twice. A fresh run directory holds no
    # checkpoint (reusing one is refused), and resumes pass ckpt_path explicitly.
    (r"`\.fit\(ckpt_path=None\)` was called without a model", "fresh run directory"),
    (r"\.fit\(ckpt_path=\"last\"\) is set, but there is no last checkpoint", "fresh run directory"),
)


class _DropTips(logging.Filter):
    """Lightning prints advertising tips (cloud loggers, litmodels) on every run, and echoes
    Trainer arguments that are set to their defaults (``Trainer(limit_val_batches=1.0)`` was
    configured so 100% of the batches will be used): our trainer config spells them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not (message.startswith("💡 Tip") or "=1.0)` was configured so " in message)


LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def quiet_third_party() -> None:
    for pattern, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    one_line_per_message()
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())


def one_line_per_message() -> None:
    """Lightning's messages printed once, by Lightning's own plain handler, however the process
    began. Lightning gives its loggers a handler (and stops them propagating) only when the
    root logger has none at import; in a parallel launcher's worker Hydra has configured the
    root first, so each message went to the ``lightning`` package's handler and to Hydra's:
    every line twice. A single run looks the same either way now."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler())
        logger.propagate = False


def print_config(cfg: DictConfig, output_dir: Path) -> None:
    """``print_config``: ``short`` (the default: the config groups chosen and the command
    line's overrides, a few lines), ``full`` or true (the composed config as a tree), false
    (nothing). Why short by default: the whole tree is about 150 lines before the first step,
    and it is saved in the run directory anyway."""
    value = cfg.get("print_config", "short")
    if value is False or str(value) == "false":
        return
    if value is True or str(value) == "full":
        print_config_tree(cfg)
        return
    from hydra.core.hydra_config import HydraConfig

    saved = output_dir / ".hydra" / "config.yaml"
    try:
        runtime = HydraConfig.get()
        choices = {k: v for k, v in runtime.runtime.choices.items() if not k.startswith("hydra")}
        overrides = list(runtime.overrides.task)
    except ValueError:  # outside a Hydra job (tests, the API): nothing to summarise
        choices, overrides = {}, []
    groups = " ".join(f"{k}={v}" for k, v in choices.items() if v is not None)
    print(f"config: {groups}" if groups else "config:", flush=True)
    if overrides:
        print(f"  overrides: {' '.join(overrides)}", flush=True)
    print(f"  all of it: {saved} (print_config=full prints it)", flush=True)


def print_config_tree(cfg: DictConfig, order: Sequence[str] = CONFIG_ORDER) -> None:
    """The composed config, one branch per group (as lightning-hydra-template prints it);
    interpolations resolved where they can be."""
    tree = Tree("config", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order and k != "hydra"]
    for key in keys:
        branch = tree.add(key, style="bold")
        value = cfg[key]
        try:
            text = (
                OmegaConf.to_yaml(value, resolve=True)
                if isinstance(value, DictConfig)
                else str(value)
            )
        except Exception:
            text = OmegaConf.to_yaml(value) if isinstance(value, DictConfig) else str(value)
        branch.add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    Console().print(tree)


class StepProgressBar(RichProgressBar):
    """Rich progress bar whose title reads ``Epoch 3 · step 750/8000``: the suite trains by
    steps (``max_epochs=-1``), where Lightning's default title reads ``Epoch 3/-2``."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        description = f"Epoch {current_epoch}"
        if trainer.max_steps and trainer.max_steps > 0:
            description += f" · step {trainer.global_step}/{trainer.max_steps}"
        elif trainer.max_epochs is not None and trainer.max_epochs > 0:
            description += f"/{trainer.max_epochs - 1}"
        return description


def clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainProgressBar(ProgressBar):
    """Where stdout is not a terminal (a Slurm job, ``nohup``, ``> train.log``) the rich bar
    draws nothing until the end; this prints one line every ``interval_s`` seconds of
    training instead, and one when training ends::

        step 750/5000 (15%) · 48,000 samples · train/loss 0.412 · val/acc 0.873 ·
        1,523 samples/s · elapsed 0:31 · remaining 2:55

    Samples/s is over the last interval; the remaining time extrapolates the run's own pace
    so far (validation included)."""

    def __init__(self, monitor: str | None = None, interval_s: float = 30.0) -> None:
        super().__init__()
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s!r}")
        self.monitor, self.interval_s = monitor, interval_s
        self._enabled = True
        self._start = self._last = 0.0
        self._first_step = self._last_samples = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._first_step = trainer.global_step
        self._last_samples = getattr(pl_module, "samples_seen", 0)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if time.monotonic() - self._last >= self.interval_s:
            self.report(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report(trainer, pl_module)

    def total_steps(self, trainer: L.Trainer) -> int | None:
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps
        batches = trainer.num_training_batches
        if trainer.max_epochs and trainer.max_epochs > 0 and batches != float("inf"):
            return int(trainer.max_epochs * batches)
        return None

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule, now: float) -> str:
        step, total = trainer.global_step, self.total_steps(trainer)
        parts = [f"step {step}/{total} ({step / total:.0%})" if total else f"step {step}"]
        samples = getattr(pl_module, "samples_seen", None)
        if samples is not None:
            parts.append(f"{samples:,} samples")
        metrics = trainer.callback_metrics
        for name in ("train/loss", self.monitor):
            if name and name in metrics:
                parts.append(f"{name} {float(metrics[name]):.4g}")
        if samples is not None and now > self._last:
            parts.append(f"{(samples - self._last_samples) / (now - self._last):,.0f} samples/s")
        elapsed = now - self._start
        parts.append(f"elapsed {clock(elapsed)}")
        done = step - self._first_step
        if total and done > 0 and step < total:
            parts.append(f"remaining {clock(elapsed / done * (total - step))}")
        return " · ".join(parts)

    def report(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        now = time.monotonic()
        print(self.line(trainer, pl_module, now), flush=True)
        self._last, self._last_samples = now, getattr(pl_module, "samples_seen", 0)


def progress_bar(monitor: str | None = None, interval_s: float = 30.0) -> ProgressBar:
    """The rich `StepProgressBar` on a terminal, else `PlainProgressBar` (the config's
    ``callbacks.progress_bar``)."""
    if sys.stdout.isatty():
        return StepProgressBar()
    return PlainProgressBar(monitor, interval_s)


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary without the FLOPs column and total (always 0: the
    suite does not trace FLOPs)."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities.model_summary import get_human_readable_count
        from rich.table import Table

        kept = [(name, column) for name, column in summary_data if name not in ("FLOPs", "Mode")]
        table = Table(header_style="bold")
        for name, _ in kept:
            table.add_column(name, justify="right" if name == "Params" else "left")
        for row in zip(*(column for _, column in kept), strict=True):
            table.add_row(*row)
        console = Console()
        console.print(table)
        console.print(
            f"Trainable params: {get_human_readable_count(int(trainable_parameters))}   "
            f"Total params: {get_human_readable_count(int(total_parameters))}   "
            f"Size: {model_size:.2f} MB"
        )


@contextmanager
def lightning_info_silenced() -> Iterator[None]:
    """For Trainers built only to check a config: their "GPU available" lines would print
    twice on every run (once for the check, once for the real trainer)."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

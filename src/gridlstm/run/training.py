"""The function Hydra calls: build, fit (or resume), test the best checkpoint, write
``metrics.json``.

Run-output contract (docs/configuration.md, "Outputs"): every run writes into its Hydra
output directory the composed config (``.hydra/``), ``checkpoints/last.ckpt`` and the best
checkpoint, logs, and ``metrics.json``: a flat object with a ``status`` (`gridlstm.run.runs`),
the final ``val/...`` and ``test/...`` metrics (measured on the best checkpoint) plus
``params``, ``samples_seen``, ``wall_time_s`` and the ``seed`` it ran with (a studies file
that sets no seed runs train.yaml's: the record says which), and two entries that are not
metrics: ``fingerprint`` (the training loss at fixed steps, `callbacks.Fingerprint`) and
``provenance`` (the code, versions and machine that made it, `gridlstm.run.provenance`).

Exit codes: 0 completed; 2 a bad config (one line, before any work); 3 diverged; 128 + the
signal number when interrupted (143 SIGTERM, 130 SIGINT), after saving
``checkpoints/last.ckpt``. Under ``-m`` a diverged, invalid or crashing job is recorded and
returns the worst score to the sweeper instead, so the sweep goes on.

Longer than 400 lines because the one procedure has many exits (resume, requeue, divergence,
interruption, a failed sweep job) and each is a small function here, next to the others.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.run import (
    code,
    cuda_graphs,
    denormals,
    hydra_runtime,
    provenance,
    runs,
    stored_config,
    sweeps,
    threads,
)
from gridlstm.run.build import (
    build_callbacks,
    build_datamodule,
    build_module,
    build_trainer,
    guarded,
    processes_per_machine,
    unused_gpu,
)
from gridlstm.run.callbacks import (
    Diverged,
    Fingerprint,
    InterruptCheckpoint,
    RunState,
    SamplesToThreshold,
)
from gridlstm.run.config import (
    SweepConfigError,
    check_compatible,
    check_launch,
    check_run,
    check_sweeper,
    check_val_interval,
    interval_message,
)
from gridlstm.run.console import print_config, quiet_third_party
from gridlstm.run.errors import ConfigError
from gridlstm.run.launch import CHILD_ENV, job_environment
from gridlstm.run.loggers import (
    build_loggers,
    finish_wandb,
    log_final_metrics,
    log_hyperparameters,
    logger_configs,
    watch_model,
)

log = logging.getLogger(__name__)

# Last logged training values kept in metrics.json (chars_per_s is a running mean).
FINAL_TRAIN_METRICS = ("train/loss", "train/bpc", "train/chars_per_s", "train/tokens_per_s")
# Entries of metrics.json that are not metrics: never printed nor logged (gridlstm.run.provenance).
RECORD_ONLY = ("fingerprint", "provenance")


def print_summary(metrics: dict[str, Any], output_dir: Path) -> None:
    table = Table(title="Final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key in RECORD_ONLY:
            continue
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    Console().print(f"outputs: {output_dir}")


def is_first_process() -> bool:
    return os.environ.get(CHILD_ENV) != "1" and os.environ.get("RANK", "0") == "0"


def validate_if_never_validated(
    trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule
) -> str:
    """A run that stops before its first validation (max_steps below one epoch or one
    val_check_interval) validates once at the end, so it still has a point on its curve and
    a best checkpoint; returns that checkpoint's path ('' if nothing was needed)."""
    callback = trainer.checkpoint_callback
    if callback is None or callback.best_model_path or trainer.global_step == 0:
        return ""
    log.info("no validation ran during training: validating once at step %d", trainer.global_step)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    path = Path(callback.dirpath or ".") / f"best-step{trainer.global_step}.ckpt"
    # the whole checkpoint, as ModelCheckpoint writes it; said, so that Lightning does not
    # print "weights_only was not set", which reads as a loading that is not safe
    trainer.save_checkpoint(path, weights_only=False)
    return str(path)


class Stopped(Exception):
    """Training ended early (divergence, interruption); ``metrics.json`` says why."""

    def __init__(self, metrics: dict[str, Any], exit_code: int) -> None:
        super().__init__(metrics.get("reason", ""))
        self.metrics, self.exit_code = metrics, exit_code


def sigusr1_as_sigterm() -> None:
    """Outside SLURM, SIGUSR1 (the warning signal schedulers send before a kill) stops the run
    as SIGTERM does. Under SLURM, Lightning's SLURM environment owns SIGUSR1 (save an hpc
    checkpoint, requeue the job), so it is left alone."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if sys.platform == "win32" or SLURMEnvironment.detect():
        return
    signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))


def identity(cfg: DictConfig) -> dict[str, str]:
    """Which task and model a checkpoint belongs to (checked before it is resumed)."""
    return {"task": str(cfg.task.name), "model": str(cfg.model.name)}


def requested_resume(cfg: DictConfig) -> str:
    """``resume`` as given; a SLURM job that was requeued (preempted, timed out) resumes
    automatically, whatever its command line said."""
    resume = "false" if cfg.get("resume") in (None, False) else str(cfg.get("resume")).lower()
    if resume == "false" and int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0:
        return "auto"
    return resume


def choose_start(cfg: DictConfig, output_dir: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """(checkpoint to resume from or None, metrics of a run already completed or None)."""
    resume = requested_resume(cfg)
    auto = resume == "auto" and not cfg.get("ckpt_path")
    if auto and (changes := stored_config.changed_settings(cfg, output_dir)):
        listed = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if changes[4:] else "")
        raise ConfigError(
            f"resume=auto: {output_dir} holds a run with other settings: {listed}; "
            "resume it with its own settings (a resume may change trainer, logger, hardware "
            f"and callbacks), or choose another {runs.directory_option()}"
        )
    if auto and runs.read_status(output_dir) == runs.COMPLETED:
        return None, runs.read_record(output_dir)
    return runs.resume_from(resume, cfg.get("ckpt_path"), output_dir, identity(cfg)), None


def stopped(
    status: str,
    reason: str,
    exit_code: int,
    trainer: L.Trainer,
    module: Any,
    start: float,
    seed: int,
    record: dict[str, Any] | None = None,
) -> Stopped:
    metrics = {
        "status": status,
        "reason": reason,
        "seed": seed,
        "params": module.num_parameters,
        **getattr(module, "extra_metrics", {}),  # e.g. the width a param_budget solved
        "samples_seen": module.samples_seen,
        "global_step": trainer.global_step,
        "wall_time_s": round(time.time() - start, 2),
        **(record or {}),
    }
    return Stopped(metrics, exit_code)


def interval_problem(error: ValueError, trainer: L.Trainer, cfg: DictConfig) -> str | None:
    """Lightning checks an integer ``val_check_interval`` against the batches of an epoch
    only once the data is set up (at the start of fit, before the first step); its error,
    as a one-line message naming the choices. None for any other error."""
    if "`val_check_interval`" not in str(error):
        return None
    return interval_message(cfg, trainer.num_training_batches)


@dataclass
class Prepared:
    """What the checks decided and built, before anything is written: a completed run
    (``finished``), or the checkpoint to resume from (None: start fresh) and the parts."""

    resume: Path | None = None
    finished: dict[str, Any] | None = None
    threads: int = 0
    module: Any = None
    datamodule: Any = None
    callbacks: list[Callback] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    graphed: int = 0
    denormals: str = ""  # what the run does with subnormal floats (gridlstm.run.denormals)


def prepare(cfg: DictConfig) -> Prepared:
    """Every check a run makes and everything it builds before its first output: the config
    checks, refuse / resume / start for its directory, the data, the model (a parameter
    budget solved), the callbacks. Writes nothing; `gridlstm.run.dry_run` stops here."""
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("dry_run") not in (None, False):
        raise ConfigError(
            f"dry_run={cfg.dry_run}: a dry run is asked for on the command line "
            "(python train.py ... dry_run=true); a config file cannot set it"
        )
    check_launch()  # every check before the first line of output (the error comes alone)
    check_compatible(cfg)
    check_sweeper(cfg)
    check_run(cfg)
    resume, finished = choose_start(cfg, output_dir)
    if finished is not None:
        return Prepared(finished=finished)
    requested = cfg.hardware.get("threads", "auto")
    count = guarded(
        f"hardware={cfg.hardware.name}",
        lambda: threads.apply(requested, processes_per_machine(cfg.hardware)),
    )
    flush = denormals.apply(cfg.hardware.get("flush_denormal", False))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = guarded(f"task={cfg.task.name}", lambda: build_datamodule(cfg.task))
    module = guarded(f"model={cfg.model.name}", lambda: build_module(cfg, datamodule))
    check_val_interval(cfg, datamodule)
    graphed = cuda_graphs.apply(cfg, module, datamodule)
    has_logger = bool(logger_configs(cfg.get("logger")))
    callbacks, skipped = guarded(
        f"task={cfg.task.name}", lambda: build_callbacks(cfg.get("callbacks"), has_logger)
    )
    return Prepared(resume, None, count, module, datamodule, callbacks, skipped, graphed, flush)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then validate and test the best checkpoint; returns the final metrics."""
    start = time.time()
    running = code.running()  # the code this process imported, before anything can change it
    quiet_third_party()
    output_dir = Path(cfg.paths.output_dir)
    prepared = prepare(cfg)
    if prepared.finished is not None:
        print(f"resume=auto: {output_dir} holds a completed run; nothing to do", flush=True)
        return prepared.finished
    resume, count, module, datamodule = (
        prepared.resume,
        prepared.threads,
        prepared.module,
        prepared.datamodule,
    )
    callbacks, skipped, graphed = prepared.callbacks, prepared.skipped, prepared.graphed
    if resume is not None and resume.is_relative_to(output_dir):
        start -= runs.previous_wall_time(output_dir)  # wall_time_s counts every part of a run
    # Everything that can refuse the config has run: only now the run's own output.
    if is_first_process():
        if resume is not None:
            print(f"resuming from {resume}", flush=True)
        elif requested_resume(cfg) == "auto" and not cfg.get("ckpt_path"):
            print(f"resume=auto: no checkpoint in {output_dir}; starting fresh", flush=True)
        stored_config.save(cfg, output_dir)
        print(f"run directory: {output_dir}", flush=True)
        print_config(cfg, output_dir)
    if is_first_process() and (line := unused_gpu(cfg.hardware)):
        log.warning(line)
    log.info("CPU threads: %d (hardware.threads=%s)", count, cfg.hardware.get("threads", "auto"))
    log.info(prepared.denormals)
    log.info("seed: %d", cfg.seed)
    for name in skipped:
        log.info("logger=none: skipping callback %s (it needs a logger)", name)
    backends = sorted({m.backend for m in module.modules() if isinstance(m, GridLSTM)})
    log.info(
        "model=%s: %d trainable parameters%s",
        cfg.model.name,
        module.num_parameters,
        f" (GridLSTM backend {', '.join(backends)})" if backends else "",
    )
    if graphed:
        log.info("hardware.cuda_graphs: %d GridLSTM(s) replay CUDA graphs per input shape", graphed)

    loggers = build_loggers(cfg.get("logger"), output_dir if is_first_process() else None)
    interrupt = InterruptCheckpoint(str(output_dir / "checkpoints"))
    config = OmegaConf.to_container(cfg, resolve=True)
    fingerprint = Fingerprint()
    callbacks += [interrupt, RunState(identity(cfg), config), fingerprint]
    trainer = build_trainer(cfg.trainer, cfg.hardware, loggers, callbacks)
    log_hyperparameters(loggers, cfg, {"params": module.num_parameters})
    guarded("logger=wandb", lambda: watch_model(loggers, module))
    sigusr1_as_sigterm()

    def record() -> dict[str, Any]:  # what made the run, and its training's fingerprint
        return made_by(trainer, output_dir, choices, fingerprint, running)

    try:
        with dispatch.explain(unique=True) as choices:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            metrics = evaluate_best(trainer, module, datamodule, callbacks)
    except Diverged as error:
        raise stopped(
            runs.DIVERGED, str(error), 3, trainer, module, start, cfg.seed, record()
        ) from None
    except ValueError as error:
        problem = interval_problem(error, trainer, cfg)
        if problem is None:
            raise
        raise ConfigError(problem) from None
    except SystemExit:
        if interrupt.reason is None:
            raise
        number = signal.SIGINT if interrupt.reason == "SIGINT" else signal.SIGTERM
        saved = (
            f"; resume with resume=auto from {provenance.shown(interrupt.ckpt_path)}"
            if trainer.global_step
            else ""
        )
        reason = f"interrupted by {interrupt.reason} at step {trainer.global_step}{saved}"
        raise stopped(
            runs.INTERRUPTED, reason, 128 + number, trainer, module, start, cfg.seed, record()
        ) from None
    metrics.update(
        status=runs.COMPLETED,
        seed=cfg.seed,
        params=module.num_parameters,
        samples_seen=module.samples_seen,
        global_step=trainer.global_step,
        wall_time_s=round(time.time() - start, 2),
    )
    if trainer.is_global_zero:
        log_final_metrics(loggers, metrics)
        metrics.update(record())  # in the record, not sent to the loggers as metrics
        runs.write_metrics(output_dir, metrics)
        print_summary(metrics, output_dir)
    return metrics


def made_by(
    trainer: L.Trainer,
    output_dir: Path,
    choices: list[tuple[str, str, str | None]],
    fingerprint: Fingerprint,
    running: code.Code,
) -> dict[str, Any]:
    """The record's ``fingerprint`` and ``provenance`` entries (`gridlstm.run.provenance`)."""
    cuda = trainer.strategy.root_device.type == "cuda"
    made = provenance.collect(output_dir, uses_cuda=cuda, steps=choices, running=running)
    return {"fingerprint": fingerprint.record(), "provenance": made}


def evaluate_best(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    callbacks: list[Callback],
) -> dict[str, Any]:
    """Final training values, then val and test metrics of the best checkpoint."""
    train_metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k in FINAL_TRAIN_METRICS
    }
    # The first ModelCheckpoint tracks the task's main metric (conf/callbacks/default.yaml).
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best = best or validate_if_never_validated(trainer, module, datamodule)
    ckpt_path = best or None
    # Scores of the best checkpoint are not points of the training curves: metrics.json and
    # the W&B summary hold them.
    loggers, trainer.loggers = trainer.loggers, []
    samples_seen = module.samples_seen  # loading the best checkpoint rewinds the counter
    val = trainer.validate(
        module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True
    )
    test = trainer.test(
        module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True
    )
    module.samples_seen = samples_seen
    trainer.loggers = loggers

    metrics: dict[str, Any] = {**train_metrics, **val[0], **test[0]}
    for callback in callbacks:
        if isinstance(callback, SamplesToThreshold):  # null when never reached
            metrics["val/samples_to_threshold"] = callback.samples
    metrics.update(getattr(module, "extra_metrics", {}))  # e.g. a width solved for a budget
    return metrics


def failed_job(cfg: DictConfig, reason: str) -> dict[str, Any]:
    """Under ``-m``, a job that cannot run is recorded and the sweep goes on with the next
    one (`gridlstm.run.sweeps.SweepReport` counts the failures at the end)."""
    output_dir = Path(cfg.paths.output_dir)
    record = {"status": runs.FAILED, "reason": reason}
    if is_first_process() and runs.read_status(output_dir) is None:  # never over a result
        runs.write_metrics(output_dir, record)
    elif is_first_process():  # refused over an earlier result: said beside it, not in it
        sweeps.record_refusal(output_dir, reason)
    return {**record, str(cfg.task.get("monitor", "value")): worst_value(cfg.task)}


def worst_value(task: DictConfig) -> float:
    """What a failed or diverged job returns to the sweeper: the worst possible score in the
    task's direction (Optuna accepts infinities; NaN makes hydra-optuna-sweeper 1.3 crash)."""
    return -math.inf if task.get("monitor_mode", "max") == "max" else math.inf


def main(cfg: DictConfig) -> dict[str, Any]:
    """Entry point for ``train.py``: one clear line and exit code 2 on a bad config; see the
    module docstring for the other exit codes. Under ``-m`` a bad or failing job is recorded
    (``status: failed``) and the sweep goes on."""
    exit_code = 0
    try:
        with job_environment():
            return train(cfg)
    except ConfigError as error:
        exit_code = 2
        print(f"error: {error}", file=sys.stderr)
        if hydra_runtime.is_multirun() and not isinstance(error, SweepConfigError):
            return failed_job(cfg, str(error))
        if is_first_process():
            stored_config.discard_if_fresh(Path(cfg.paths.output_dir))
        raise SystemExit(2) from None
    except Stopped as stop:
        exit_code = stop.exit_code
        if is_first_process():
            runs.write_metrics(Path(cfg.paths.output_dir), stop.metrics)
        print(f"{stop.metrics['status']}: {stop.metrics['reason']}", file=sys.stderr)
        print(f"run directory: {cfg.paths.output_dir}", file=sys.stderr)
        if stop.metrics["status"] == runs.DIVERGED and hydra_runtime.is_multirun():
            return {**stop.metrics, cfg.task.monitor: worst_value(cfg.task)}  # the sweep goes on
        raise SystemExit(stop.exit_code) from None
    except Exception as error:
        exit_code = 1
        print(f"run failed; its directory: {cfg.paths.output_dir}", file=sys.stderr)
        if hydra_runtime.is_multirun():
            log.exception("job failed")  # the traceback goes to the job's log
            lines = str(error).strip().splitlines()
            return failed_job(cfg, f"{type(error).__name__}: {lines[0] if lines else ''}")
        raise
    except BaseException:
        exit_code = 1
        print(f"run failed; its directory: {cfg.paths.output_dir}", file=sys.stderr)
        raise
    finally:
        finish_wandb(exit_code)

"""Experiment loggers: W&B (offline unless told otherwise), CSV, TensorBoard, MLflow, or
none. W&B and MLflow runs are the run directory's own: a resume continues them."""

from __future__ import annotations

import netrc
import os
import secrets
import string
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from gridlstm.run import hydra_runtime


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str | None = None) -> str:
    """Explicit config, else WANDB_MODE, else online only if credentials exist."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_has_credentials() else "offline"


def logger_configs(logger: DictConfig | None) -> list[DictConfig]:
    """The configured loggers (the ``logger`` group; ``logger=none``: none)."""
    return [c for c in (logger or {}).values() if c is not None and "_target_" in c]


WANDB_ID = "wandb_run_id.txt"  # in the run directory: the W&B run a resume continues


def wandb_run_id(output_dir: Path | None) -> str | None:
    """The W&B run id of this run directory, made and stored on its first start, so that
    every later part (``resume=auto``, a requeued job) logs into the same W&B run."""
    if output_dir is None:
        return None
    path = output_dir / WANDB_ID
    if path.is_file():
        return path.read_text().strip() or None
    alphabet = string.ascii_lowercase + string.digits  # W&B's own run ids: 8 of these
    run_id = "".join(secrets.choice(alphabet) for _ in range(8))
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def build_loggers(logger: DictConfig | None, output_dir: Path | None = None) -> list[Logger]:
    """The loggers of the ``logger`` group (W&B offline without credentials). With the run
    directory, the W&B run is the directory's own (`wandb_run_id`, ``resume="allow"``)."""
    loggers = []
    for logger_cfg in logger_configs(logger):
        if logger_cfg._target_.endswith("WandbLogger"):
            logger_cfg = OmegaConf.create(OmegaConf.to_container(logger_cfg, resolve=True))
            group, name = hydra_runtime.job_names()
            with open_dict(logger_cfg):
                # Ours, not WandbLogger's: applied by watch_model once the model exists.
                watch = (logger_cfg.pop("watch", None), logger_cfg.pop("watch_log_freq", 100))
                logger_cfg.mode = wandb_mode(logger_cfg.get("mode"))
                logger_cfg.offline = logger_cfg.mode == "offline"
                logger_cfg.group = logger_cfg.get("group") or group
                logger_cfg.name = logger_cfg.get("name") or name
                if logger_cfg.get("id") is None and (run_id := wandb_run_id(output_dir)):
                    logger_cfg.id, logger_cfg.resume = run_id, "allow"
            logger = instantiate(logger_cfg)
            drop_unset_anonymous(logger)
            logger.gridlstm_watch = watch
            loggers.append(logger)
            continue
        if logger_cfg._target_.endswith("MLFlowLogger"):
            loggers.append(mlflow_logger(logger_cfg, output_dir))
            continue
        loggers.append(instantiate(logger_cfg))
    return loggers


MLFLOW_ID = "mlflow_run_id.txt"  # in the run directory: the MLflow run a resume continues


def mlflow_logger(logger_cfg: DictConfig, output_dir: Path | None) -> Logger:
    """Lightning's MLFlowLogger named like the W&B run; with the run directory, a resume
    logs into the run its first part created (the id is stored on the first start)."""
    logger_cfg = OmegaConf.create(OmegaConf.to_container(logger_cfg, resolve=True))
    path = None if output_dir is None else output_dir / MLFLOW_ID
    with open_dict(logger_cfg):
        group, name = hydra_runtime.job_names()
        logger_cfg.run_name = logger_cfg.get("run_name") or name
        if group is not None:
            logger_cfg.tags = {"sweep": group, **(logger_cfg.get("tags") or {})}
        if path is not None and path.is_file() and logger_cfg.get("run_id") is None:
            logger_cfg.run_id = path.read_text().strip() or None
    logger = instantiate(logger_cfg)
    logger.gridlstm_resumed = logger_cfg.get("run_id") is not None
    if path is not None and not path.is_file():
        output_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{logger.run_id}\n")  # creates the MLflow run now
    return logger


def drop_unset_anonymous(logger: WandbLogger) -> None:
    """WandbLogger passes ``anonymous=None`` to ``wandb.init``, and wandb >= 0.22 warns on
    every run that the (deprecated) setting has no effect, even when it is None. Leaving an
    unset value out changes nothing else."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and "anonymous" in init and init["anonymous"] is None:
        del init["anonymous"]


WATCH = ("gradients", "parameters", "all")


def watch_model(loggers: list[Logger], model: Any) -> None:
    """``logger.wandb.watch``: gradient / parameter histograms of ``model`` via wandb.watch."""
    for logger in loggers:
        what, freq = getattr(logger, "gridlstm_watch", (None, 100))
        if what is None:
            continue
        if what not in WATCH:
            raise ValueError(
                f"logger.wandb.watch must be one of {', '.join(WATCH)} or null, got {what!r}"
            )
        logger.watch(model, log=what, log_freq=int(freq))


def log_hyperparameters(loggers: list[Logger], cfg: DictConfig, extra: dict[str, Any]) -> None:
    """Log the whole resolved config as plain containers, plus ``extra`` (e.g. params)."""
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams.update(extra)
    for logger in loggers:
        if getattr(logger, "gridlstm_resumed", False):
            logger.log_hyperparams(new_mlflow_params(logger, hparams))
        else:
            logger.log_hyperparams(hparams)


def new_mlflow_params(logger: Logger, hparams: dict[str, Any]) -> dict[str, Any]:
    """A resumed MLflow run keeps the parameters its first part logged (MLflow refuses to
    change one; what a resume changed, e.g. ``resume=auto``, is in the run directory's
    ``.hydra/``): only keys it has not seen are added."""
    from lightning.fabric.utilities.logger import _convert_params, _flatten_dict

    flat = _flatten_dict(_convert_params(hparams), delimiter="/")
    logged = logger.experiment.get_run(logger.run_id).data.params
    return {key: value for key, value in flat.items() if key not in logged}


def log_final_metrics(loggers: list[Logger], metrics: dict[str, Any]) -> None:
    """The final metrics (best checkpoint) as W&B run summary, not as points of the training
    curves; call on global rank zero. CSV runs keep them in metrics.json."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)


def finish_wandb(exit_code: int = 0) -> None:
    """Close the W&B run so the next job of a sweep starts its own; a non-zero exit code
    (crash, divergence, interruption) marks it failed on the dashboard."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)

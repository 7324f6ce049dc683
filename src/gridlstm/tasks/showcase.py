"""What a validation shows besides numbers: generated text, translations, misclassified
images. They go to W&B (tables, images; offline runs keep them in the run folder) when a W&B
logger is attached, and to the console log otherwise."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

log = logging.getLogger(__name__)


def wandb_loggers(module: L.LightningModule) -> list[WandbLogger]:
    return [lg for lg in module.loggers if isinstance(lg, WandbLogger)]


def should_show(module: L.LightningModule) -> bool:
    """Once per real validation, on rank zero (not during the sanity check)."""
    trainer = module.trainer
    return trainer.is_global_zero and not trainer.sanity_checking


def show_table(module: L.LightningModule, key: str, columns: list[str], rows: list[list]) -> None:
    loggers = wandb_loggers(module)
    for logger in loggers:
        logger.log_table(key, columns=columns, data=rows)
    if not loggers:
        for row in rows:
            log.info(
                "%s | %s", key, " | ".join(f"{c}: {v}" for c, v in zip(columns, row, strict=True))
            )


def show_images(
    module: L.LightningModule, key: str, images: list[Tensor], captions: list[str]
) -> None:
    loggers = wandb_loggers(module)
    for logger in loggers:
        logger.log_image(
            key, images=[i.float().cpu() for i in images], caption=captions, step=module.global_step
        )
    if not loggers:
        log.info("%s: %s", key, "; ".join(captions))


__all__ = ["should_show", "show_images", "show_table", "wandb_loggers"]

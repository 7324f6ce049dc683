"""What every task module shares: the optimizer/scheduler from config, a count of the
training samples seen (across all ranks, kept in checkpoints and logged), and the global
gradient norm before clipping (``train/grad_norm``)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate


class TaskModule(L.LightningModule):
    """Subclasses save ``optimizer`` and ``scheduler`` (``_partial_`` configs) as hparams."""

    samples_seen: int = 0

    def count_samples(self, batch_size: int) -> None:
        self.samples_seen += batch_size * self.trainer.world_size
        self.log("train/samples_seen", float(self.samples_seen))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called after AMP unscaling and before clipping: the norm that clipping compares.
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads))

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["samples_seen"] = self.samples_seen

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.samples_seen = int(checkpoint.get("samples_seen", 0))

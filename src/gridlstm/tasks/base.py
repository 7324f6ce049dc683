"""What every task module shares: the optimizer/scheduler from config, a count of the
training samples seen (across all ranks, kept in checkpoints and logged), the global
gradient norm before clipping (``train/grad_norm``), and `TaskModule.log_step` for
per-step training values, and `TaskModule.record_macs` (the compute one sample costs, beside
its parameter count in ``metrics.json``).

Two names for the network a task holds, one meaning each: ``self.backbone`` is the configured
``model.net`` where the task puts its own head on it (classification, image); ``self.model``
is a whole network built around that net (`TokenSequenceModel`: embedding, net and head; the
translation encoder-decoder). Checkpoint keys are these names, so they stay as they are."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from gridlstm.nn.sizing import forward_flops


class TaskModule(L.LightningModule):
    """Subclasses save ``optimizer`` and ``scheduler`` (``_partial_`` configs) as hparams."""

    samples_seen: int = 0

    def logs_this_step(self) -> bool:
        """Whether Lightning writes this training step's values to the loggers (every
        ``trainer.log_every_n_steps`` steps and when the trainer stops): Lightning's own
        rule, read from its logger connector (private; if it moves, every step logs)."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def log_step(self, name: str, value: Any, **kwargs: Any) -> None:
        """``self.log`` of a per-step training value, only on the steps whose values
        Lightning writes (`logs_this_step`; a callable ``value`` is computed only then): a
        ``self.log`` call costs about 0.7 ms of Lightning's bookkeeping, and the default
        experiment's step logged three values, about 8% of its step, that were overwritten
        before any logger saw them. The progress bar and ``metrics.json`` show the last
        written value."""
        if self.logs_this_step():
            self.log(name, value() if callable(value) else value, **kwargs)

    def record_macs(self, *sample: torch.Tensor) -> None:
        """Record the multiply-adds of one forward pass over ``sample`` (one sample: the GEMMs
        of backbone and head, `forward_flops`), so that a comparison at equal parameters or
        equal width also states the compute (``metrics.json``: ``macs_per_sample``). Called
        at the end of fit, so that the extra pass is not the first one hooks see."""
        macs = forward_flops(self, *sample) // 2
        self.extra_metrics = {**getattr(self, "extra_metrics", {}), "macs_per_sample": macs}

    def count_samples(self, batch_size: int) -> None:
        self.samples_seen += batch_size * self.trainer.world_size
        self.log_step("train/samples_seen", float(self.samples_seen))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called after AMP unscaling and before clipping: the norm that clipping compares.
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            self.log_step("train/grad_norm", lambda: torch.nn.utils.get_total_norm(grads))

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

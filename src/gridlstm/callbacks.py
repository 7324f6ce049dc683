"""Callbacks of the suite (Lightning's own cover checkpoints, progress and LR logging)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn


class SamplesToThreshold(Callback):
    """Training samples seen when the monitored validation metric first reached
    ``threshold`` (docs/model.md section 3: "samples seen when validation accuracy first
    reached X%").

    ``mode="max"``: reached when metric >= threshold, an accuracy in (0, 1]; ``mode="min"``:
    when metric <= threshold, a positive loss such as bits/char. ``threshold=None`` turns the
    callback off. Reads the metric after each validation during fit (not in the sanity check,
    not in a later ``validate``/``test``), keeps the first hit in checkpoints, and logs it as
    ``val/samples_to_threshold``. ``samples`` stays None if the threshold is never reached.
    """

    def __init__(
        self, monitor: str = "val/acc", threshold: float | None = 0.99, mode: str = "max"
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
                raise ValueError(f"threshold must be a number or null, got {threshold!r}")
            if mode == "max" and not 0.0 < threshold <= 1.0:
                raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
            if mode == "min" and not threshold > 0.0:
                raise ValueError(f"threshold must be > 0 to minimise {monitor}, got {threshold!r}")
        self.monitor, self.mode = monitor, mode
        self.threshold = None if threshold is None else float(threshold)
        self.samples: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            self.threshold is None
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
            or self.samples is not None
        ):
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        # Compare in the metric's own precision: float32(0.9) < 0.9 in float64.
        threshold = torch.tensor(self.threshold, dtype=value.dtype)
        if (value < threshold) if self.mode == "max" else (value > threshold):
            return
        self.samples = int(pl_module.samples_seen)
        for logger in trainer.loggers:
            logger.log_metrics({"val/samples_to_threshold": self.samples}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples = state_dict.get("samples")

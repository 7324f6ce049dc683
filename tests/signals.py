"""Test-only callbacks that break a run at a known step: a real signal the training process
sends itself (instead of racing a timer), and a learning rate that turns infinite."""

from __future__ import annotations

import os
import signal

import lightning as L
from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    def __init__(self, step: int, name: str = "SIGTERM") -> None:
        self.step, self.signal = step, getattr(signal, name)

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


class InfiniteLearningRateAtStep(Callback):
    """From ``step`` on, the learning rate is infinite: the next update breaks the weights."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = float("inf")


class NaNGradientAtSteps(Callback):
    """A transient fault: at the given steps one gradient turns NaN after backward."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = set(steps)

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step in self.steps:
            next(p for p in pl_module.parameters() if p.grad is not None).grad.fill_(float("nan"))


class RaiseAtStep(Callback):
    """A crash (a bug, a lost file system) in the middle of training."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")

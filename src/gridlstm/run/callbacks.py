"""Callbacks of the suite (Lightning's own cover checkpoints, progress and LR logging):
samples to threshold, and what keeps long runs safe (divergence, interruption, resume)."""

from __future__ import annotations

import logging
import math
import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

log = logging.getLogger(__name__)


class SamplesToThreshold(Callback):
    """Training samples seen when the monitored validation metric first reached
    ``threshold`` (docs/protocols.md: "samples seen when validation accuracy first
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


class Diverged(RuntimeError):
    """Training produced a non-finite (or exploding) loss, gradient norm or weights."""


class Divergence(Callback):
    """Stop at the first step whose loss or gradient norm is non-finite (or whose loss
    exceeds ``max_loss``), or whose update left non-finite weights.

    Why here and not at validation: by the next validation the weights are NaN and Lightning
    would checkpoint them (``last.ckpt``, even "best" when no best exists yet). Stopping at the
    step keeps every checkpoint on disk finite. ``skip_steps`` bad steps are skipped first
    (their gradients dropped, the optimizer not stepped), for the odd spike in a long run;
    broken weights cannot be skipped. Under ``16-mixed`` the gradient scaler owns inf/NaN
    gradients, so only the loss and the weights are checked; the loss Lightning hands to
    backward is then multiplied by the scaler's scale (65536 at the start), so it is divided
    back before ``max_loss`` applies.

    Cost: the checks are computed on the device and read back together, one host-device
    synchronisation per step. The weights left by an update are read at the next step, and
    before any validation or checkpoint, so a broken update never reaches either.
    """

    def __init__(self, max_loss: float | None = 1.0e3, skip_steps: int = 0) -> None:
        if max_loss is not None and (
            isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)) or max_loss <= 0
        ):
            raise ValueError(f"max_loss must be a positive number or null, got {max_loss!r}")
        if isinstance(skip_steps, bool) or not isinstance(skip_steps, int) or skip_steps < 0:
            raise ValueError(f"skip_steps must be an integer >= 0, got {skip_steps!r}")
        self.max_loss, self.skip_steps = max_loss, skip_steps
        self.skipped = 0
        self._losses: list[Tensor] = []
        self._weights: tuple[int, Tensor] | None = None  # (step of the update, weight norm)

    def _fail(self, step: int, problem: str) -> None:
        raise Diverged(f"training diverged at step {step}: {problem}")

    def _check_weights(self) -> None:
        """Stop if the latest update left non-finite weights (one synchronisation)."""
        if self._weights is not None:
            step, norm = self._weights
            self._weights = None
            if not math.isfinite(float(norm)):
                self._fail(step, "the weights became non-finite (lower the learning rate)")

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor
    ) -> None:
        loss = loss.detach().float()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():  # the scaled loss: divide back
            loss = loss / scaler.get_scale()
        self._losses.append(loss)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        checks: dict[str, Tensor] = {}
        if self._weights is not None:
            checks["weights"] = self._weights[1]
        if self._losses:  # the worst of the accumulated micro-batches
            checks["train/loss"] = torch.stack(self._losses).max()
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and trainer.precision != "16-mixed":
            checks["train/grad_norm"] = torch.nn.utils.get_total_norm(grads)
        self._losses = []
        if not checks:
            return
        device = next(iter(checks.values())).device
        values = torch.stack([v.float().to(device) for v in checks.values()]).tolist()
        read = dict(zip(checks, values, strict=True))  # the one synchronisation of the step
        if not math.isfinite(read.pop("weights", 0.0)):
            step, self._weights = self._weights[0], None
            self._fail(step, "the weights became non-finite (lower the learning rate)")
        self._weights = None
        problem = None
        for name, value in read.items():
            if not math.isfinite(value):
                problem = f"{name} is {value}"
            elif name == "train/loss" and self.max_loss is not None and value > self.max_loss:
                problem = f"{name} is {value:.4g}, above divergence.max_loss={self.max_loss:g}"
            if problem:
                break
        if problem is None:
            return
        if self.skipped >= self.skip_steps:
            self._fail(trainer.global_step, problem)
        self.skipped += 1
        log.warning(
            "step %d skipped (%s); %d of divergence.skip_steps=%d used",
            trainer.global_step,
            problem,
            self.skipped,
            self.skip_steps,
        )
        for param in pl_module.parameters():
            param.grad = None  # the optimizer leaves parameters without gradients alone

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        weights = [p.detach() for p in pl_module.parameters()]
        if weights:  # global_step already counts this update: name the step that made it
            self._weights = (trainer.global_step - 1, torch.nn.utils.get_total_norm(weights))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check_weights()

    def on_save_checkpoint(self, *args: Any) -> None:
        self._check_weights()  # raising here aborts the save: nothing broken is written

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check_weights()

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Lightning's on-exception checkpoint, for interruptions only (SIGTERM, SIGUSR1 outside
    SLURM, Ctrl-C): saves ``last.ckpt`` mid-epoch so ``resume=auto`` continues from the
    interrupted step. An error or a divergence saves nothing (the weights may be broken)."""

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        super().__init__(dirpath, filename)
        self.reason: str | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.reason = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.reason = "SIGINT"
        else:
            return
        if trainer.state.fn == TrainerFn.FITTING and trainer.global_step > 0:
            super().on_exception(trainer, pl_module, exception)
            log.info(
                "interrupted (%s) at step %d: saved %s",
                self.reason,
                trainer.global_step,
                self.ckpt_path,
            )

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        """Keep the file: Lightning's version deletes it at teardown, and with it the
        ``last.ckpt`` that ModelCheckpoint and the resume rely on."""


class RunState(Callback):
    """What else a resumed run needs to continue as if never stopped: the RNG states
    (dropout, sampling) and which task and model the checkpoint belongs to (checked before a
    resume), plus the run's resolved config (the evaluate tool rebuilds from it). RNG
    states are restored when training restarts, after the sanity check, which would
    otherwise consume them."""

    def __init__(
        self, identity: dict[str, str] | None = None, config: dict[str, Any] | None = None
    ) -> None:
        self.identity, self.config = dict(identity or {}), config
        self._rng: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["gridlstm_run"] = dict(self.identity)
        if self.config is not None:  # the resolved run config: gridlstm.evaluate rebuilds from it
            checkpoint["gridlstm_config"] = self.config

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is None:
            return
        state, self._rng = self._rng, None
        torch.set_rng_state(state["torch"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy(), *rest))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


STOP_ENV = "GRIDLSTM_STOP_AFTER_STEPS"  # a re-run's steps=N: stop after N steps, schedule unchanged


def fingerprint_steps(step: int, every: int) -> bool:
    """The steps a fingerprint keeps: 1, 10, 100, then every ``every``."""
    return step in (1, 10, 100) or step % every == 0


class Fingerprint(Callback):
    """The training loss at fixed optimizer steps (`fingerprint_steps`), to full precision:
    a record's short trace of its training that a re-run compares step by step (where two
    runs part, not only whether their final scores agree). Kept in checkpoints, so a resumed
    run's fingerprint is whole. One host sync every ``every`` steps.

    With ``GRIDLSTM_STOP_AFTER_STEPS=N`` in the environment the run stops after step N
    (`gridlstm.rerun`'s ``steps=``): unlike a smaller ``trainer.max_steps`` it leaves a
    schedule that depends on ``max_steps`` as it was."""

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.loss: dict[int, float] = {}
        stop = os.environ.get(STOP_ENV, "").strip()
        self.stop_after = int(stop) if stop.isdigit() and int(stop) > 0 else None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        step = trainer.global_step
        if fingerprint_steps(step, self.every) and step not in self.loss:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, Tensor):
                self.loss[step] = float(loss.detach().float().cpu())
        if self.stop_after is not None and step >= self.stop_after:
            trainer.should_stop = True

    def record(self) -> dict[str, Any]:
        """``metrics.json``'s ``fingerprint`` entry: {"every", "train/loss": {step: loss}}."""
        losses = {str(k): v for k, v in sorted(self.loss.items())}
        return {"every": self.every, "train/loss": losses}

    def state_dict(self) -> dict[str, Any]:
        return {"every": self.every, "loss": dict(self.loss)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Merged under what this run has recorded: testing the best checkpoint after fit
        loads its (older) state, which must not drop the later steps."""
        restored = {int(k): float(v) for k, v in state_dict.get("loss", {}).items()}
        self.loss = {**restored, **self.loss}

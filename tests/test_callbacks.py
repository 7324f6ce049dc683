"""SamplesToThreshold: the first fit-time validation at or above the threshold counts."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from gridlstm.run.callbacks import SamplesToThreshold


def validate(callback, acc, samples, *, sanity=False, fn=TrainerFn.FITTING):
    logged = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((metrics, step)))
    trainer = SimpleNamespace(
        sanity_checking=sanity,
        state=SimpleNamespace(fn=fn),
        callback_metrics={"val/acc": torch.tensor(acc)},
        loggers=[logger],
        global_step=samples // 10,
    )
    callback.on_validation_end(trainer, SimpleNamespace(samples_seen=samples))
    return logged


def test_first_crossing_is_recorded_once():
    callback = SamplesToThreshold("val/acc", 0.9)
    assert validate(callback, 0.95, 50, sanity=True) == []  # sanity check: ignored
    validate(callback, 0.5, 100)
    assert callback.samples is None
    logged = validate(callback, 0.9, 200)  # equal counts as reached
    assert callback.samples == 200
    assert logged == [({"val/samples_to_threshold": 200}, 20)]
    validate(callback, 0.99, 300)
    validate(callback, 0.1, 400)
    assert callback.samples == 200
    standalone = SamplesToThreshold("val/acc", 0.9)  # a validate() outside fit: not counted
    assert validate(standalone, 1.0, 500, fn=TrainerFn.VALIDATING) == []
    assert standalone.samples is None


def test_state_survives_a_checkpoint():
    callback = SamplesToThreshold("val/acc", 0.5)
    validate(callback, 0.7, 1234)
    restored = SamplesToThreshold("val/acc", 0.5)
    restored.load_state_dict(callback.state_dict())
    assert restored.samples == 1234


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, 2])
def test_threshold_outside_unit_interval_is_rejected(threshold):
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        SamplesToThreshold("val/acc", threshold)


def test_min_mode_counts_the_first_value_at_or_below_the_threshold():
    callback = SamplesToThreshold("val/acc", 1.5, mode="min")  # e.g. bits/char
    validate(callback, 2.0, 100)
    assert callback.samples is None
    validate(callback, 1.5, 200)
    assert callback.samples == 200


def test_threshold_none_turns_the_callback_off():
    callback = SamplesToThreshold("val/acc", None)
    assert validate(callback, 1.0, 100) == [] and callback.samples is None


@pytest.mark.parametrize(
    ("threshold", "mode", "message"),
    [(0, "min", "must be > 0"), (0.5, "up", "mode must be"), ("x", "max", "a number or null")],
)
def test_bad_min_mode_settings_are_rejected(threshold, mode, message):
    with pytest.raises(ValueError, match=message):
        SamplesToThreshold("val/bpc", threshold, mode=mode)


class _Regression(L.LightningModule):
    """One linear layer whose loss starts near ``level`` (a tiny model for real Trainer runs)."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.layer, self.level = torch.nn.Linear(4, 1), level

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).float().pow(2).mean() + self.level

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(32, 4))
        return torch.utils.data.DataLoader(data, batch_size=8)


@pytest.mark.parametrize(("level", "diverges"), [(2.5, False), (2000.0, True)])
def test_max_loss_applies_to_the_unscaled_loss_under_a_gradient_scaler(level, diverges):
    """16-mixed on a GPU scales the loss by 65536 before backward: a loss of 2.5 must not
    read as 163,840 (> max_loss), while a real loss above max_loss still stops the run."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    from gridlstm.run.callbacks import Diverged, Divergence

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)  # what 16-mixed uses on CUDA
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        callbacks=[Divergence(max_loss=1000)],
    )
    if diverges:
        with pytest.raises(Diverged, match=r"train/loss is 20\d\d, above divergence.max_loss"):
            trainer.fit(_Regression(level))
    else:
        trainer.fit(_Regression(level))
        assert trainer.global_step == 3

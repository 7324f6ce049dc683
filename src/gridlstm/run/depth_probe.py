"""``callbacks=depth_probe``: per-layer measurements of a 2-LSTM over training.

Every ``every_n_steps`` optimizer steps (and at step 0) the probe (`gridlstm.nn.probe`) runs
the backbone's answer loss on a fixed slice of the validation problems: gate activations,
hidden-vector norms and gradient norms per layer. Each value goes to the loggers as
``probe/<stat>/layer<l>`` and, in long form (step, stat, layer, value), to ``probe.csv`` in
the run directory, which a resumed run continues (its repeated steps replaced, not
doubled). Tasks without an answer loss, or backbones without a 2-LSTM, are left alone
(one log line says so).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from gridlstm.nn.grid import GridLSTM
from gridlstm.nn.probe import probe_depth

log = logging.getLogger(__name__)


class DepthProbe(Callback):
    def __init__(self, every_n_steps: int = 1000, batch_size: int = 64, path: str = "probe.csv"):
        if every_n_steps < 1 or batch_size < 1:
            raise ValueError(
                f"every_n_steps and batch_size must be >= 1, got {every_n_steps}, {batch_size}"
            )
        self.every_n_steps, self.batch_size, self.path = every_n_steps, batch_size, Path(path)
        self.warned = False
        self.continued = False  # set by the first write of this process

    def _target(self, pl_module: L.LightningModule) -> GridLSTM | None:
        nets = [m for m in pl_module.modules() if isinstance(m, GridLSTM) and m.grid_dims == 1]
        if nets and hasattr(pl_module, "_answer_loss"):
            return nets[0]
        if not self.warned:
            log.info("callbacks.depth_probe: no 2-LSTM with an answer loss here; not probing")
            self.warned = True
        return None

    def write(self, step: int, rows: list[tuple]) -> None:
        """Append ``rows``; the first write of a process first drops the file's rows at or
        after ``step``: a resumed run repeats the steps after its checkpoint, whose earlier
        measurements the resume discarded (as the CSV log's own rows, `csv_history`)."""
        header = ["step", "stat", "layer", "value"]
        if not self.continued and self.path.exists():
            with self.path.open(newline="") as handle:
                kept = [r for r in csv.DictReader(handle) if int(r["step"]) < step]
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=header)
                writer.writeheader()
                writer.writerows(kept)
        self.continued = True
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(header)
            writer.writerows(rows)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or not trainer.is_global_zero:
            return
        net = self._target(pl_module)
        if net is None:
            return
        batch = trainer.datamodule.splits["val"][: self.batch_size].to(pl_module.device)
        with torch.enable_grad():
            stats = probe_depth(net, lambda: pl_module._answer_loss(batch))
        rows = [
            (step, stat, layer + 1, value)
            for stat, values in stats.items()
            for layer, value in enumerate(values)
        ]
        self.write(step, rows)
        metrics = {f"probe/{stat}/layer{layer}": value for _, stat, layer, value in rows}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

"""Vector classification (parity): a vector-in backbone, a linear classifier on its output.

The backbone (1-LSTM, deep tanh/ReLU net) is built from its config with ``input_size`` set
by the task, since the input width (k bits) belongs to the data, not to the model config.
Rows are the input features followed by the class label.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from gridlstm.data import contracts
from gridlstm.nn import count_parameters
from gridlstm.tasks.base import TaskModule


class VectorClassificationModule(TaskModule):
    DATA = contracts.BitVectors  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        input_size: int,
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = instantiate(net, input_size=input_size)
        width = getattr(self.backbone, "output_size", self.backbone.hidden_size)
        self.head = nn.Linear(width, num_classes)
        self.num_parameters = count_parameters(self)
        for split in ("val", "test"):
            setattr(self, f"{split}_acc", MulticlassAccuracy(num_classes, average="micro"))
            setattr(self, f"{split}_loss", MeanMetric())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)[0])

    def on_fit_end(self) -> None:
        self.record_macs(torch.zeros(1, self.hparams.input_size, device=self.device))

    def _loss(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        logits = self(rows[:, :-1].float())
        return F.cross_entropy(logits, rows[:, -1]), logits

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        loss, _ = self._loss(batch)
        self.count_samples(batch.shape[0])
        self.log_step("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: Tensor, split: str) -> None:
        loss, logits = self._loss(batch)
        acc, mean_loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        acc(logits.argmax(-1), batch[:, -1])
        mean_loss(loss, weight=batch.shape[0])
        self.log(f"{split}/acc", acc, prog_bar=True)
        self.log(f"{split}/loss", mean_loss)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate(batch, "test")

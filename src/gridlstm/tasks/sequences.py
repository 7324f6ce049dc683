"""Sequence classification and labelling on a user's data (``task=sequences``).

Any sequence backbone (the 2-LSTM ``grid2d``, ``stacked_lstm``, ...) reads the sequence; an
input layer turns each step into the backbone's input vector (an embedding for token ids, a
linear map for features, as the language model's embedding does for characters) and a linear
head gives the class scores: from each sequence's last real step (``target=sequence``) or at
every step (``target=step``, padded steps ignored). Accuracy and cross-entropy are reported.
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
from gridlstm.data.sequences import IGNORE
from gridlstm.nn import count_parameters
from gridlstm.tasks.base import TaskModule

Batch = tuple[Tensor, Tensor, Tensor]  # inputs, lengths, labels


class SequenceLabelsModule(TaskModule):
    DATA = contracts.LabelledSequences  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        inputs: str,
        target: str,
        input_size: int,
        num_classes: int,
        max_length: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = instantiate(net)
        if getattr(self.backbone, "batch_first", None) is not True:
            raise ValueError(
                f"model.net ({type(self.backbone).__name__}) must be a sequence model built "
                "with batch_first=True (grid2d, stacked_lstm, stacked_gru, ...)"
            )
        width = self.backbone.input_size
        self.input = (
            nn.Embedding(input_size, width) if inputs == "tokens" else nn.Linear(input_size, width)
        )
        self.head = nn.Linear(
            getattr(self.backbone, "output_size", self.backbone.hidden_size), num_classes
        )
        self.num_parameters = count_parameters(self)
        for split in ("val", "test"):
            accuracy = MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE)
            setattr(self, f"{split}_acc", accuracy)
            setattr(self, f"{split}_loss", MeanMetric())

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Class scores: (batch, classes), or (batch, time, classes) for ``target=step``."""
        output, _ = self.backbone(self.input(inputs))
        if self.hparams.target == "sequence":
            last = (lengths - 1).to(output.device)
            output = output[torch.arange(len(output), device=output.device), last]
        return self.head(output)

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        inputs, lengths, labels = batch
        logits = self(inputs, lengths)
        flat, targets = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        return F.cross_entropy(flat, targets, ignore_index=IGNORE), flat, targets

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, _, _ = self._loss(batch)
        self.count_samples(batch[0].shape[0])
        self.log_step("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: Batch, split: str) -> None:
        loss, logits, targets = self._loss(batch)
        acc, mean_loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        acc(logits.argmax(-1), targets)
        mean_loss(loss, weight=int((targets != IGNORE).sum()))
        self.log(f"{split}/acc", acc, prog_bar=True)
        self.log(f"{split}/loss", mean_loss)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_fit_end(self) -> None:
        length = self.hparams.max_length
        if self.hparams.inputs == "tokens":
            sample = torch.zeros(1, length, dtype=torch.long, device=self.device)
        else:
            sample = torch.zeros(1, length, self.hparams.input_size, device=self.device)
        self.record_macs(sample, torch.tensor([length]))

"""Algorithmic sequence tasks (addition, memorization): prompt -> answer.

The loss is on answer positions only. What the model reads during the answer is the data's
``feedback`` protocol (`gridlstm.data.feedback`):

- teacher (no ``blank_token``): training feeds the true previous answer token; evaluation
  decodes greedily from the prompt, feeding back the model's own predictions.
- none (a ``blank_token``): the model reads blanks after the prompt, in training and
  evaluation alike, and the answer is the argmax at the answer positions of that one pass:
  the answer tokens never reach the model's input.

Evaluation scores whole answers (exact match) and single symbols (per-position accuracy).
Positions after a prematurely generated end token count as wrong, so stopping early never
scores.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch

from gridlstm.data import contracts
from gridlstm.nn import TokenSequenceModel, count_parameters
from gridlstm.tasks.base import TaskModule


def mask_after_end(generated: Tensor, target: Tensor, end_token: int, vocab_size: int) -> Tensor:
    """Replace every position after the first generated ``end_token`` by a wrong symbol."""
    ended = (generated == end_token).long().cumsum(1)
    after_end = torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], 1) > 0
    return torch.where(after_end, (target + 1) % vocab_size, generated)


class AlgorithmicSequenceModule(TaskModule):
    """Wraps a sequence backbone from `gridlstm.nn` for prompt -> answer tasks.

    Args:
        net: the backbone's config (a plain dict with ``_target_``); stored in checkpoints
            so they rebuild without Hydra's config files.
        vocab_size, prompt_length, answer_length, end_token: the task's layout.
        blank_token: the token read during the answer (feedback=none), or None: the previous
            answer token is read (feedback=teacher; checkpoints from before the option).
        embedding_std: the embedding's initial standard deviation (None: PyTorch's 1.0;
            `TokenSequenceModel`).
        optimizer: ``_partial_`` optimizer config; scheduler: optional ``_partial_`` LR
            scheduler config stepped every optimizer step.
    """

    DATA = contracts.SequenceProblems  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        vocab_size: int,
        prompt_length: int,
        answer_length: int,
        end_token: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        blank_token: int | None = None,
        embedding_std: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = TokenSequenceModel(vocab_size, instantiate(net), embedding_std=embedding_std)
        self.num_parameters = count_parameters(self.model)
        for split in ("val", "test"):
            setattr(self, f"{split}_acc", MulticlassExactMatch(num_classes=vocab_size))
            setattr(self, f"{split}_digit_acc", MulticlassAccuracy(vocab_size, average="micro"))
            setattr(self, f"{split}_loss", MeanMetric())

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(tokens)[0]

    def inputs(self, batch: Tensor) -> Tensor:
        """What the model reads for a batch of rows: the row shifted by one (the previous
        answer token is fed back), or the prompt followed by blanks (feedback=none)."""
        blank = self.hparams.get("blank_token")
        if blank is None:
            return batch[:, :-1]
        prompt = batch[:, : self.hparams.prompt_length]
        blanks = prompt.new_full((batch.shape[0], self.hparams.answer_length - 1), blank)
        return torch.cat([prompt, blanks], dim=1)

    def on_fit_end(self) -> None:
        """One problem's training pass (prompt and answer positions): the compute a deep tied
        grid spends where its parameters do not grow (`TaskModule.record_macs`)."""
        length = self.hparams.prompt_length + self.hparams.answer_length
        row = torch.zeros(1, length, dtype=torch.long, device=self.device)
        self.record_macs(self.inputs(row))

    def answer_logits(self, batch: Tensor) -> Tensor:
        """Logits (batch, answer_length, vocab) at the answer positions, one pass."""
        return self(self.inputs(batch))[:, self.hparams.prompt_length - 1 :]

    def _answer_loss(self, batch: Tensor, logits: Tensor | None = None) -> Tensor:
        """Cross-entropy on the answer positions only."""
        logits = self.answer_logits(batch) if logits is None else logits
        targets = batch[:, self.hparams.prompt_length :]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        loss = self._answer_loss(batch)
        self.count_samples(batch.shape[0])
        self.log_step("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: Tensor, split: str) -> None:
        prompt = batch[:, : self.hparams.prompt_length]
        target = batch[:, self.hparams.prompt_length :]
        logits = self.answer_logits(batch)
        if self.hparams.get("blank_token") is None:
            generated = self.model.greedy_continue(prompt, self.hparams.answer_length)
        else:  # nothing is fed back: the single pass that the loss reads is the answer
            generated = logits.argmax(-1)
        generated = mask_after_end(
            generated, target, self.hparams.end_token, self.hparams.vocab_size
        )
        acc = getattr(self, f"{split}_acc")
        digit_acc = getattr(self, f"{split}_digit_acc")
        loss = getattr(self, f"{split}_loss")
        acc(generated, target)
        digit_acc(generated[:, :-1], target[:, :-1])
        loss(self._answer_loss(batch, logits), weight=batch.shape[0])
        self.log(f"{split}/acc", acc, prog_bar=True)
        self.log(f"{split}/digit_acc", digit_acc)
        self.log(f"{split}/loss", loss)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate(batch, "test")

"""Image classification (MNIST): an image backbone from `gridlstm.nn.models.image`, a linear
classifier on its features; accuracy and error rate (the paper reports 0.32% test error).

The backbone is built from its config with ``image_size`` and ``channels`` set by the task,
since they belong to the data, not to the model config.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from gridlstm.data import contracts
from gridlstm.nn import count_parameters
from gridlstm.nn.checks import check_positive
from gridlstm.tasks.base import TaskModule
from gridlstm.tasks.showcase import should_show, show_images


class ImageClassificationModule(TaskModule):
    DATA = contracts.Images  # what its data module gives it (`module_kwargs`)

    def __init__(
        self,
        net: dict[str, Any],
        image_size: int,
        channels: int,
        num_classes: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        show_errors: int = 8,
        classifier_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = instantiate(net, image_size=image_size, channels=channels)
        features = self.backbone.output_size
        # A ReLU layer between the scan's features and the softmax, as a secondary account of
        # the paper's MNIST network describes (4,096 units); None: the linear head alone.
        self.hidden: nn.Module = nn.Identity()
        if classifier_hidden is not None:
            check_positive("classifier_hidden", classifier_hidden)
            self.hidden = nn.Sequential(nn.Linear(features, classifier_hidden), nn.ReLU())
            features = classifier_hidden
        self.head = nn.Linear(features, num_classes)
        self.num_parameters = count_parameters(self)
        for split in ("val", "test"):
            setattr(self, f"{split}_acc", MulticlassAccuracy(num_classes, average="micro"))
            setattr(self, f"{split}_loss", MeanMetric())
        self.errors: list[tuple[Tensor, int, int]] = []  # misclassified val images (rank 0)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.hidden(self.backbone(images)[0]))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.count_samples(images.shape[0])
        self.log_step("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        images, labels = batch
        logits = self(images)
        predicted = logits.argmax(-1)
        getattr(self, f"{split}_acc").update(predicted, labels)
        if split == "val" and len(self.errors) < self.hparams.show_errors:
            for i in (predicted != labels).nonzero().flatten().tolist():
                if len(self.errors) < self.hparams.show_errors:
                    self.errors.append((images[i], int(labels[i]), int(predicted[i])))
        getattr(self, f"{split}_loss").update(F.cross_entropy(logits, labels), len(labels))

    def _log_split(self, split: str) -> None:
        acc, loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        accuracy = acc.compute()  # over every rank's images
        # Equal on every rank already; sync_dist only silences Lightning's DDP advice.
        self.log(f"{split}/acc", accuracy, sync_dist=True)
        self.log(f"{split}/error", 1.0 - accuracy, prog_bar=True, sync_dist=True)
        self.log(f"{split}/loss", loss.compute(), sync_dist=True)
        acc.reset()
        loss.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_start(self) -> None:
        self.errors = []

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")
        if self.errors and should_show(self):
            captions = [f"label {label}, predicted {guess}" for _, label, guess in self.errors]
            show_images(self, "val/misclassified", [image for image, *_ in self.errors], captions)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

"""A user's images in class folders (``task=images``), read through torchvision's
``ImageFolder``, for the 3-LSTM and the other image models.

Layout: ``root/<class>/<image>`` (split into train / validation / test by seeded fractions),
or ``root/train/<class>/...`` with ``root/val/`` (or ``validation/``) and ``root/test/``
beside it (a split that is missing is cut from train). Every image is resized to
``image_size`` x ``image_size`` (grey with ``channels=1``, RGB with 3), decoded once when the
data module is built, so that an unreadable image is one line naming it before any training,
and standardised with the training images' mean and standard deviation per channel (as the
MNIST task does with MNIST's). The image models cut the image into patches (``patch_size``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from gridlstm.data.contracts import Images
from gridlstm.data.position import shuffled_loader
from gridlstm.data.shards import rank_and_world
from gridlstm.data.splits import check_fraction, cut
from gridlstm.nn.checks import check_choice, check_positive

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


def read_folder(root: Path, image_size: int, channels: int, classes: list[str] | None = None):
    """(images uint8 (N, C, S, S), labels (N,), class names) of one ImageFolder root."""
    from PIL import Image, UnidentifiedImageError
    from torchvision import datasets, transforms

    mode = "L" if channels == 1 else "RGB"
    resize = transforms.Compose(
        [transforms.Resize((image_size, image_size)), transforms.PILToTensor()]
    )
    try:
        folder = datasets.ImageFolder(str(root), loader=lambda path: path)
    except (FileNotFoundError, OSError) as error:
        raise ValueError(
            f"{root}: expected class folders holding images (root/<class>/<image>); "
            f"{' '.join(str(error).split())}"
        ) from None
    if classes is not None and folder.classes != classes:
        raise ValueError(
            f"{root}: its classes {folder.classes} differ from the training folder's {classes}"
        )
    images, labels = [], []
    for path, label in folder.samples:
        try:
            with Image.open(path) as image:
                images.append(resize(image.convert(mode)))
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path}: not a readable image ({error.__class__.__name__})") from None
        labels.append(label)
    return torch.stack(images), torch.tensor(labels), folder.classes


class ImageFolderDataModule(L.LightningDataModule):
    """Image classification from class folders.

    Args:
        root: the folder (see the module docstring for the two layouts).
        image_size: every image is resized to this square size.
        channels: 1 (grey) or 3 (RGB).
        val_fraction, test_fraction: of the training images, for splits not given as folders.
        batch_size, eval_batch_size: per process.
        seed: the training shuffle. data_seed: the split.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        image_size: int = 28,
        channels: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        data_seed: int = 1234,
    ) -> None:
        super().__init__()
        if root is None:
            raise ValueError("give the image folder: task.datamodule.root=<folder>")
        check_positive("image_size", image_size)
        check_choice("channels", channels, (1, 3))
        check_positive("batch_size", batch_size)
        check_positive("eval_batch_size", eval_batch_size)
        check_fraction("val_fraction", val_fraction)
        check_fraction("test_fraction", test_fraction)
        self.root, self.image_size, self.channels = Path(str(root)), image_size, channels
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        if not self.root.is_dir():
            raise ValueError(f"root={self.root}: no such folder")
        splits = self._read()
        splits = self._split(splits, {"val": val_fraction, "test": test_fraction}, data_seed)
        train = splits["train"][0].float() / 255.0
        self.mean = train.mean(dim=(0, 2, 3), keepdim=True)[0]
        self.std = train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-6)
        self.splits = splits

    def _read(self) -> dict[str, tuple[Tensor, Tensor]]:
        found = {
            split: folder
            for split, names in SPLIT_FOLDERS.items()
            for folder in [next((self.root / n for n in names if (self.root / n).is_dir()), None)]
            if folder is not None
        }
        if "train" not in found:
            images, labels, self.classes = read_folder(self.root, self.image_size, self.channels)
            return {"train": (images, labels)}
        images, labels, self.classes = read_folder(found["train"], self.image_size, self.channels)
        splits = {"train": (images, labels)}
        for split in ("val", "test"):
            if split in found:
                x, y, _ = read_folder(found[split], self.image_size, self.channels, self.classes)
                splits[split] = (x, y)
        return splits

    def _split(
        self, splits: dict[str, tuple[Tensor, Tensor]], fractions: dict[str, float], seed: int
    ) -> dict[str, tuple[Tensor, Tensor]]:
        missing = [s for s in ("val", "test") if s not in splits]
        if len(self.classes) < 2:
            raise ValueError(
                f"{self.root}: found {len(self.classes)} class folder; need two or more"
            )
        if not missing:
            return splits
        images, labels = splits["train"]
        chosen, rest = cut(len(images), {s: fractions[s] for s in missing}, seed, str(self.root))
        for split, rows in {**chosen, "train": rest}.items():
            splits[split] = (images[rows], labels[rows])
        return splits

    def module_kwargs(self) -> Images:
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "num_classes": len(self.classes),
        }

    def _dataset(self, split: str, rank: int = 0, world: int = 1) -> TensorDataset:
        images, labels = self.splits[split]
        scaled = (images[rank::world].float() / 255.0 - self.mean) / self.std
        return TensorDataset(scaled, labels[rank::world])

    def train_dataloader(self) -> DataLoader:
        return shuffled_loader(
            self._dataset("train"), self, self.batch_size, self.seed, num_workers=self.num_workers
        )

    def _eval_loader(self, split: str) -> DataLoader:
        rank, world = rank_and_world()
        return DataLoader(self._dataset(split, rank, world), batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

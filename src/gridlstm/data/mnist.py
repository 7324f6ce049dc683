"""MNIST (``task=mnist``): torchvision's loader, or Hugging Face ``datasets`` parquet files.

Split as in the paper (docs/protocols.md): the official 60000 training images give 50000 for
training and the last 10000 for validation; the official 10000 test images are the test set.
Pixels are scaled to [0, 1] and normalised with the training set's mean and std (0.1307,
0.3081). Augmentation (random shifts) is off by default.

torchvision keeps the raw IDX files under ``<data_dir>/MNIST/raw``; gzipped copies there
(``*.gz``, as published) are decompressed on first use. Every IDX file is checked (magic
number, sizes, length) before use, so a corrupt or truncated file is named in one line.
"""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from gridlstm.data.contracts import Images
from gridlstm.data.files import hf_load_dataset, one_fetcher, partial_file
from gridlstm.data.position import shuffled_loader
from gridlstm.data.shards import rank_and_world
from gridlstm.nn.checks import check_choice, check_positive

log = logging.getLogger(__name__)

MEAN, STD = 0.1307, 0.3081
OFFICIAL_TRAIN = 60_000
# torchvision's file names; (magic number, dims) of each IDX file.
FILES = {
    "train-images-idx3-ubyte": (2051, (OFFICIAL_TRAIN, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (OFFICIAL_TRAIN,)),
    "t10k-images-idx3-ubyte": (2051, (10_000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10_000,)),
}
SOURCES = ("torchvision", "parquet")


def check_idx(path: Path, magic: int, dims: tuple[int, ...] | None = None) -> None:
    """ValueError naming ``path`` unless it is a complete unsigned-byte IDX file of
    ``magic`` (2051 images, 2049 labels) with ``dims`` (None: any sizes)."""
    with path.open("rb") as file:
        header = file.read(4 + 4 * (magic & 0xFF))
    ndim = magic & 0xFF
    if len(header) < 4 + 4 * ndim or struct.unpack(">i", header[:4])[0] != magic:
        raise ValueError(f"{path} is not an MNIST IDX file (expected magic number {magic})")
    found = struct.unpack(f">{ndim}i", header[4:])
    if dims is not None and found != dims:
        raise ValueError(f"{path} holds shape {found}, expected {dims}")
    expected = 4 + 4 * ndim + int(np.prod(found))
    if path.stat().st_size != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: {path.stat().st_size} bytes, expected {expected} "
            f"for shape {found}; delete it and download again"
        )


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte array as one IDX file: images (N x H x W, magic 2051) or labels
    (N, magic 2049), the format the published MNIST files use."""
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            f"IDX files here hold uint8 labels (N) or images (N x H x W), got "
            f"{array.dtype} {array.shape}"
        )
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.tobytes()


def write_synthetic(root: str | Path, seed: int = 0) -> Path:
    """Random pixels and labels at MNIST's official sizes, as the four raw IDX files under
    ``root/MNIST/raw`` (returned).

    Why: a training step's time depends on the shapes only, so a machine without the real
    files can still time the MNIST study's models (``scripts/step_speed.py
    synthetic_mnist=1``). Never for accuracy: the labels are noise.
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (magic, dims) in FILES.items():
        high = 256 if magic == 2051 else 10
        (raw / name).write_bytes(idx_bytes(rng.integers(0, high, dims, dtype=np.uint8)))
    return raw


def gunzip(archive: Path, target: Path) -> None:
    """Decompress through a temporary file renamed into place (never a half-written file)."""
    try:
        with gzip.open(archive) as source, partial_file(target) as (out, _):
            out.write(source.read())
    except (OSError, EOFError) as error:
        raise ValueError(f"{archive} is not a readable gzip file ({error})") from None


class MNISTDataModule(L.LightningDataModule):
    """MNIST classification, 50k / 10k / 10k.

    Args:
        data_dir: torchvision's root (files under ``MNIST/raw``); downloads land there.
        download: fetch through torchvision when the files are absent.
        source: ``"torchvision"`` or ``"parquet"`` (Hugging Face ``datasets`` files with
            ``image`` and ``label`` columns, e.g. the hub's ``mnist`` export).
        parquet_files: ``{"train": path(s), "test": path(s)}`` for ``source="parquet"``.
        val_size: the last images of the official training set kept for validation.
        train_size: use only the first ``train_size`` training images (CPU runs); None: all.
        augment: random shifts of up to ``shift`` pixels for training images.
        batch_size, eval_batch_size: per process.
        seed: shuffling.
        strict_sizes: require the official 60000 / 10000 images (off for custom copies).
    """

    def __init__(
        self,
        data_dir: str | Path = "data/mnist",
        download: bool = True,
        source: str = "torchvision",
        parquet_files: dict[str, Any] | None = None,
        val_size: int = 10_000,
        train_size: int | None = None,
        augment: bool = False,
        shift: int = 2,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        seed: int = 0,
        strict_sizes: bool = True,
    ) -> None:
        super().__init__()
        check_choice("source", source, SOURCES)
        check_positive("val_size", val_size)
        check_positive("batch_size", batch_size)
        check_positive("eval_batch_size", eval_batch_size)
        if train_size is not None:
            check_positive("train_size", train_size)
        self.data_dir, self.download, self.source = Path(data_dir), download, source
        self.parquet_files = parquet_files
        self.val_size, self.train_size = val_size, train_size
        self.augment, self.shift = augment, shift
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed, self.strict_sizes = num_workers, seed, strict_sizes
        images, labels, test_images, test_labels = self._load()
        if len(images) <= val_size:
            raise ValueError(
                f"val_size={val_size} leaves no training images of the {len(images)} available"
            )
        train_end = len(images) - val_size
        if train_size is not None:
            if train_size > train_end:
                raise ValueError(
                    f"train_size={train_size} is more than the {train_end} training images"
                )
            train_end = train_size
        split_at = len(images) - val_size
        self.splits = {
            "train": (images[:train_end], labels[:train_end]),
            "val": (images[split_at:], labels[split_at:]),
            "test": (test_images, test_labels),
        }

    # ------------------------------------------------------------------ loading
    def _load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.source == "parquet":
            return self._load_parquet()
        return self._load_torchvision()

    def _raw_files(self) -> Path:
        """Make sure the four raw IDX files are there (download or gunzip), and valid."""
        raw = self.data_dir / "MNIST" / "raw"
        gzipped = any((raw / f"{name}.gz").is_file() for name in FILES)
        if all((raw / name).is_file() for name in FILES) or not (self.download or gzipped):
            return self._fetch(raw)  # nothing to fetch or unpack: no lock, no directory made
        with one_fetcher(self.data_dir, "MNIST"):
            return self._fetch(raw)

    def _fetch(self, raw: Path) -> Path:
        missing = [name for name in FILES if not (raw / name).is_file()]
        for name in list(missing):
            if (raw / f"{name}.gz").is_file():
                gunzip(raw / f"{name}.gz", raw / name)
                missing.remove(name)
        if missing and not self.download:
            raise ValueError(
                f"MNIST not found and task.datamodule.download=false: put {', '.join(missing)} "
                f"(or the .gz files) in {raw.absolute()}, torchvision's layout"
            )
        if missing:
            from torchvision.datasets import MNIST

            try:
                MNIST(self.data_dir, train=True, download=True)
            except Exception as error:
                reason = " ".join(str(error).split())  # torchvision's message spans lines
                if len(reason) > 200:
                    reason = reason[:200] + "..."
                raise ValueError(
                    f"MNIST not found in {raw.absolute()} and downloading through torchvision "
                    f"failed ({reason}); put the IDX files ({', '.join(FILES)}, raw or .gz) there"
                ) from None
        for name, (magic, dims) in FILES.items():
            check_idx(raw / name, magic, dims if self.strict_sizes else None)
        return raw

    def _load_torchvision(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        from torchvision.datasets import MNIST

        self._raw_files()
        train = MNIST(self.data_dir, train=True, download=False)
        test = MNIST(self.data_dir, train=False, download=False)
        return train.data, train.targets, test.data, test.targets

    def _load_parquet(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        files = self.parquet_files or {}
        if set(files) != {"train", "test"}:
            raise ValueError(
                "source=parquet needs parquet_files with a 'train' and a 'test' entry; "
                f"got {sorted(files)}"
            )
        load_dataset = hf_load_dataset()

        for split, paths in files.items():
            for path in [paths] if isinstance(paths, (str, Path)) else paths:
                if not Path(path).is_file():
                    raise ValueError(f"parquet_files.{split}: {path} does not exist")
        try:
            data = load_dataset(
                "parquet",
                data_files={
                    k: [str(p)] if isinstance(p, (str, Path)) else list(map(str, p))
                    for k, p in files.items()
                },
                cache_dir=str(self.data_dir / "hf_cache"),
            ).with_format("numpy")
            arrays = []
            for split in ("train", "test"):
                columns = data[split][:]  # decoded: images (N, 28, 28), labels (N,)
                images = np.asarray(columns["image"], dtype=np.uint8)
                arrays += [torch.from_numpy(images), torch.from_numpy(columns["label"])]
        except (KeyError, ValueError, TypeError, OSError) as error:
            raise ValueError(
                f"parquet_files: cannot read MNIST images and labels ({error}); expected "
                "columns 'image' (PNG bytes or 28x28 arrays) and 'label'"
            ) from None
        if arrays[0].shape[1:] != (28, 28) or arrays[2].shape[1:] != (28, 28):
            raise ValueError(f"parquet images are {tuple(arrays[0].shape[1:])}, expected 28x28")
        return arrays[0], arrays[1].long(), arrays[2], arrays[3].long()

    # ------------------------------------------------------------------ loaders
    @staticmethod
    def normalise(images: Tensor) -> Tensor:
        """uint8 (N, 28, 28) -> float (N, 1, 28, 28), standardised."""
        return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)

    def module_kwargs(self) -> Images:
        return {"image_size": 28, "channels": 1, "num_classes": 10}

    def _dataset(self, split: str, rank: int = 0, world: int = 1) -> TensorDataset:
        images, labels = self.splits[split]
        return TensorDataset(self.normalise(images[rank::world]), labels[rank::world].long())

    def train_dataloader(self) -> DataLoader:
        return shuffled_loader(
            self._dataset("train"),
            self,
            self.batch_size,
            self.seed,
            drop_last=True,
            num_workers=self.num_workers,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        # Each rank scores a disjoint slice, every image once (no padding duplicates).
        rank, world = rank_and_world()
        return DataLoader(self._dataset(split, rank, world), batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not (self.augment and self.trainer is not None and self.trainer.training):
            return batch
        images, labels = batch
        return shift_images(images, self.shift), labels


def shift_images(images: Tensor, shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Each image moved by a random whole-pixel offset in [-shift, shift]^2, zero-filled
    (the background value after normalisation is the normalised 0)."""
    if shift == 0:
        return images
    background = (0.0 - MEAN) / STD
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * shift + 1, (batch, 2), generator=generator)
    return torch.stack(
        [
            padded[i, :, dy : dy + height, dx : dx + width]
            for i, (dy, dx) in enumerate(offsets.tolist())
        ]
    )

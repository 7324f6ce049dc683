"""A user's labelled sequences (``task=sequences``): classification (one label a sequence) or
labelling (one label a step), from CSV, NumPy, Parquet or a Hugging Face dataset.

The files are read and checked when the data module is built, before any training, so a
missing column or a bad label is one line naming the file and row (`gridlstm.data.
sequence_files`). Splits come from the files (``train``, ``validation``, ``test``); one that
is not given is split off the training rows by a seeded fraction (``data_seed``, fixed in the
config, so a sweep over ``seed`` scores every run on the same rows). Batches are padded
(inputs with 0, step labels with -100, which the loss and accuracy ignore) and carry each
sequence's length: the networks run forward in time, so padding after a sequence's end never
reaches its outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from gridlstm.data.contracts import LabelledSequences
from gridlstm.data.position import shuffled_loader
from gridlstm.data.sequence_files import (
    INPUTS,
    TARGETS,
    Columns,
    Table,
    load_hf,
    read,
    read_hf_split,
)
from gridlstm.data.shards import rank_and_world
from gridlstm.data.splits import check_fraction, cut
from gridlstm.nn.checks import check_choice, check_positive

SPLITS = ("train", "validation", "test")
ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
IGNORE = -100  # the label of a padded step (torch's cross_entropy ignore_index)


class _Rows(Dataset):
    def __init__(self, table: Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        return self.table.inputs[index], self.table.labels[index]


def pad(rows: list[tuple[np.ndarray, Any]]) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs padded with 0, lengths, labels: (B,) or (B, T) padded with IGNORE)."""
    lengths = torch.tensor([len(x) for x, _ in rows])
    longest = int(lengths.max())
    first = rows[0][0]
    inputs = torch.zeros(
        (len(rows), longest, *first.shape[1:]), dtype=torch.from_numpy(first).dtype
    )
    for i, (x, _) in enumerate(rows):
        inputs[i, : len(x)] = torch.from_numpy(x)
    if np.ndim(rows[0][1]) == 0:
        return inputs, lengths, torch.tensor([int(y) for _, y in rows])
    labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
    for i, (_, y) in enumerate(rows):
        labels[i, : len(y)] = torch.from_numpy(y)
    return inputs, lengths, labels


class SequenceFilesDataModule(L.LightningDataModule):
    """Labelled sequences from a user's files.

    Args:
        data_files: a file (.csv, .npz, .parquet) split into train / validation / test by
            ``val_fraction`` and ``test_fraction``, or ``{train: ..., validation: ...,
            test: ...}`` (a missing split is cut from train); a NumPy entry may be
            ``{<input_column>: x.npy, <label_column>: y.npy}``.
        hf_dataset: instead of files, a Hugging Face dataset: a ``save_to_disk`` folder or a
            Hub name (needs the ``hf`` extra; a Hub name downloads once into its cache).
        inputs: ``tokens`` (integer ids, embedded) or ``features`` (numbers, projected).
        target: ``sequence`` (one class a sequence) or ``step`` (one class a step).
        input_column, label_column, length_column: column names (length: NumPy only).
        max_length: refuse longer sequences (None: any length).
        num_classes, vocab_size: None reads them from the data (largest id + 1).
        val_fraction, test_fraction: of the training rows, for splits not in the files.
        data_seed: the split. seed: the training shuffle.
    """

    def __init__(
        self,
        data_files: str | Mapping[str, Any] | None = None,
        hf_dataset: str | None = None,
        inputs: str = "tokens",
        target: str = "sequence",
        input_column: str = "sequence",
        label_column: str = "label",
        length_column: str = "length",
        max_length: int | None = None,
        num_classes: int | None = None,
        vocab_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        data_seed: int = 1234,
    ) -> None:
        super().__init__()
        check_choice("inputs", inputs, INPUTS)
        check_choice("target", target, TARGETS)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            check_positive(name, value)
        check_fraction("val_fraction", val_fraction)
        check_fraction("test_fraction", test_fraction)
        if (data_files is None) == (hf_dataset is None):
            raise ValueError(
                "give your data as task.datamodule.data_files=<file or {train: ...}> or "
                "task.datamodule.hf_dataset=<a saved dataset folder or Hub name>, one of them"
            )
        self.columns = Columns(inputs, target, input_column, label_column, length_column)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        given = self._read(data_files, hf_dataset)
        self._check_lengths(given, max_length)  # rows as the files number them
        self.splits = self._split(given, val_fraction, test_fraction, data_seed)
        self.sizes = self._sizes(num_classes, vocab_size)

    # ------------------------------------------------------------------ reading
    def _read(self, data_files: Any, hf_dataset: str | None) -> dict[str, Table]:
        if hf_dataset is not None:
            found = load_hf(str(hf_dataset))
            named = {ALIASES.get(k, k): v for k, v in found.items()}
            return {
                k: read_hf_split(v, self.columns, f"hf_dataset={hf_dataset}[{k}]")
                for k, v in named.items()
                if k in SPLITS
            }
        if isinstance(data_files, (str, Path)):
            return {"train": read(data_files, self.columns, "data_files")}
        entries = {ALIASES.get(str(k), str(k)): v for k, v in dict(data_files).items()}
        looks_like_columns = self.columns.input_column in entries
        if looks_like_columns:  # {sequence: x.npy, label: y.npy}: one NumPy table
            return {"train": read(data_files, self.columns, "data_files")}
        if unknown := sorted(set(entries) - set(SPLITS)):
            raise ValueError(
                f"data_files: unknown split {unknown[0]!r}; give train, validation, test "
                f"(or {{{self.columns.input_column}: x.npy, {self.columns.label_column}: y.npy}})"
            )
        return {k: read(v, self.columns, f"data_files.{k}") for k, v in entries.items()}

    @staticmethod
    def _split(
        given: dict[str, Table], val_fraction: float, test_fraction: float, data_seed: int
    ) -> dict[str, Table]:
        if "train" not in given:
            raise ValueError(f"the data has no train split; it has {', '.join(given) or 'none'}")
        missing = [s for s in ("validation", "test") if s not in given]
        if not missing:
            return given
        train = given["train"]
        fractions = {"validation": val_fraction, "test": test_fraction}
        chosen, rest = cut(len(train), {s: fractions[s] for s in missing}, data_seed, train.source)
        return {
            **given,
            **{s: train.take(rows) for s, rows in chosen.items()},
            "train": train.take(rest),
        }

    @staticmethod
    def _check_lengths(tables: dict[str, Table], max_length: int | None) -> None:
        if max_length is None:
            return
        check_positive("max_length", max_length)
        for table in tables.values():
            for row, sequence in enumerate(table.inputs):
                if len(sequence) > max_length:
                    raise ValueError(
                        f"{table.source}, row {row + 1}: a sequence of {len(sequence)} steps, "
                        f"longer than max_length={max_length}"
                    )

    def _sizes(self, num_classes: int | None, vocab_size: int | None) -> dict[str, int]:
        tables = self.splits.values()
        labels = [
            np.asarray(t.labels).max()
            if self.columns.target == "sequence"
            else max(int(y.max()) for y in t.labels)
            for t in tables
        ]
        found_classes = int(max(labels)) + 1
        classes = found_classes if num_classes is None else num_classes
        if classes < found_classes or classes < 2:
            raise ValueError(
                f"num_classes={classes}: the labels go up to {found_classes - 1} "
                "(labels are 0 .. num_classes - 1, at least two classes)"
            )
        if self.columns.inputs == "features":
            widths = {x.shape[1] for t in tables for x in t.inputs}
            if len(widths) != 1:
                raise ValueError(
                    f"every step needs the same number of features; found {sorted(widths)}"
                )
            size = widths.pop()
        else:
            found_vocab = max(int(x.max()) for t in tables for x in t.inputs) + 1
            size = found_vocab if vocab_size is None else vocab_size
            if size < found_vocab:
                raise ValueError(f"vocab_size={size}: the token ids go up to {found_vocab - 1}")
        longest = max(len(x) for t in tables for x in t.inputs)
        return {"input_size": size, "num_classes": classes, "max_length": longest}

    # ------------------------------------------------------------------ loaders
    def module_kwargs(self) -> LabelledSequences:
        return {
            "inputs": self.columns.inputs,
            "target": self.columns.target,
            "input_size": self.sizes["input_size"],
            "num_classes": self.sizes["num_classes"],
            "max_length": self.sizes["max_length"],
        }

    def train_dataloader(self) -> DataLoader:
        dataset = _Rows(self.splits["train"])
        return shuffled_loader(
            dataset, self, self.batch_size, self.seed, collate_fn=pad, num_workers=self.num_workers
        )

    def _eval_loader(self, split: str) -> DataLoader:
        rank, world = rank_and_world()  # each rank a disjoint slice, every row once
        table = self.splits[split]
        part = table.take(list(range(rank, len(table), world)))
        return DataLoader(_Rows(part), batch_size=self.eval_batch_size, collate_fn=pad)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

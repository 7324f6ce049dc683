"""Character-level language modelling on any local text file (``task=text``).

The corpus is split contiguously (train, then validation, then test; char-rnn's interleaved
validation is a known flaw, docs/model.md section 3). Byte vocabulary (256 symbols, the file
memory-mapped, never loaded into Python objects) by default; ``vocab="char"`` uses the file's
distinct Unicode characters.

Truncated BPTT layout: a split of N tokens is cut into R contiguous streams, one per batch row
(R = batch size x world size for training, each rank reading its own rows); batch i holds the
i-th window of ``bptt`` steps of every stream, so a model that carries its state from batch
to batch reads each stream in order. Evaluation streams cover the whole split: every token
after the first is a target exactly once (the last stream is padded, padding is ignored).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from gridlstm.data.contracts import Characters
from gridlstm.data.position import ResumableLoader, resumable
from gridlstm.data.shards import rank_and_world
from gridlstm.nn.checks import check_choice, check_positive

SPLITS = ("train", "val", "test")
IGNORE = -100  # target of padded positions (F.cross_entropy's default ignore_index)
VOCABS = ("byte", "char")


def read_corpus(
    path: Path, vocab: str, symbols: list[str] | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """Token ids of the whole file and the vocabulary (None: bytes 0..255).

    Bytes are memory-mapped. Characters are decoded once into an id array (4 bytes per
    character in memory) with the vocabulary sorted by code point, or, with ``symbols`` (a
    trained model's vocabulary), in that order: a character outside it is an error.
    """
    check_choice("vocab", vocab, VOCABS)
    if not path.is_file():
        raise ValueError(
            f"text file {str(path)!r} does not exist (or is not a file); give task.path=<any "
            "text file> (experiment=text_cpu's file: the one-line command in "
            "conf/experiment/text_cpu.yaml)"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"text file {str(path)!r} is empty")
    if vocab == "byte":
        return np.memmap(path, dtype=np.uint8, mode="r"), None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"text file {str(path)!r} is not UTF-8 ({error.reason} at byte {error.start}); "
            "use vocab=byte for arbitrary bytes"
        ) from None
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    found, ids = np.unique(code_points, return_inverse=True)
    if symbols is None:
        return ids.astype(np.int32), [chr(c) for c in found]
    index = {symbol: i for i, symbol in enumerate(symbols)}
    unknown = [chr(c) for c in found if chr(c) not in index]
    if unknown:
        raise ValueError(
            f"text file {str(path)!r} holds characters {''.join(unknown[:20])!r} that are not "
            f"in the model's vocabulary of {len(symbols)} characters"
        )
    mapping = np.array([index[chr(c)] for c in found], dtype=np.int32)
    return mapping[ids], list(symbols)


def split_bounds(total: int, fractions: list[float]) -> dict[str, tuple[int, int]]:
    """Contiguous [start, end) token ranges of train/val/test for the given fractions."""
    if len(fractions) != len(SPLITS):
        raise ValueError(f"split needs 3 fractions (train, val, test), got {list(fractions)!r}")
    if any(not 0.0 < float(f) <= 1.0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
        raise ValueError(
            f"split fractions must each be in (0, 1] and sum to at most 1, got {list(fractions)!r}"
        )
    bounds, start = {}, 0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        end = min(total, start + round(fraction * total))
        if end - start < 2:  # one input and one target at least
            raise ValueError(
                f"split {list(fractions)!r} leaves the {name} split with {end - start} tokens "
                f"of {total}; it needs at least 2: give it a larger fraction or use more text"
            )
        bounds[name], start = (start, end), end
    return bounds


class TrainWindows(Dataset):
    """Batch i: the i-th ``bptt`` window (plus the next token, the last target) of each of
    this rank's streams, as one (rows, bptt + 1) tensor. Read straight from the memory map."""

    def __init__(self, tokens: np.ndarray, rows: int, bptt: int, rank: int, world: int) -> None:
        length = (len(tokens) - 1) // (rows * world)  # steps per stream
        self.tokens, self.bptt, self.batches = tokens, bptt, length // bptt
        first = rank * rows
        self.starts = np.arange(first, first + rows, dtype=np.int64)[:, None] * length

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> Tensor:
        offsets = self.starts + index * self.bptt + np.arange(self.bptt + 1)
        return torch.from_numpy(np.asarray(self.tokens[offsets], dtype=np.int64))


class EvalWindows(Dataset):
    """Consecutive (inputs, targets) windows of this rank's evaluation streams (dealt
    round-robin from ``rows`` streams in all); the streams together cover every target of
    the split once (padding targets are ``IGNORE``)."""

    def __init__(self, tokens: np.ndarray, rows: int, bptt: int, rank: int, world: int) -> None:
        # ``rows`` streams in all, whatever the world size: the score does not depend on it.
        targets = len(tokens) - 1
        length = math.ceil(targets / min(rows, targets))
        streams = math.ceil(targets / length)
        mine = range(rank, streams, world)
        inputs = np.zeros((len(mine), length), dtype=np.int64)
        labels = np.full((len(mine), length), IGNORE, dtype=np.int64)
        for row, stream in enumerate(mine):
            start, end = stream * length, min((stream + 1) * length, targets)
            inputs[row, : end - start] = tokens[start:end]
            labels[row, : end - start] = tokens[start + 1 : end + 1]
        self.inputs, self.labels = torch.from_numpy(inputs), torch.from_numpy(labels)
        self.bptt = bptt
        self.batches = math.ceil(length / bptt) if len(mine) else 0

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        window = slice(index * self.bptt, (index + 1) * self.bptt)
        return self.inputs[:, window], self.labels[:, window]


class TextDataModule(L.LightningDataModule):
    """Character-level language modelling on a local text file.

    Args:
        path: the text file.
        vocab: ``"byte"`` (256 symbols, any file) or ``"char"`` (the file's UTF-8 characters).
        split: train/validation/test fractions, contiguous in that order.
        bptt: truncated-BPTT length (steps per training and evaluation window).
        batch_size: training streams per process.
        eval_batch_size: evaluation streams in all (split across ranks).
        symbols: with ``vocab="char"``, the vocabulary to encode with instead of the file's
            own characters: a re-score must use the ids the model was trained on
            (``gridlstm.evaluate`` passes the checkpoint's).
    """

    # Options a re-score of a trained model may not change (``gridlstm.evaluate``), and why.
    FIXED_AFTER_TRAINING = {
        "vocab": "the model reads the symbols it was trained on",
        "split": "it chose the text the model trained on; another split tests on it",
    }

    def __init__(
        self,
        path: str | Path | None = None,
        vocab: str = "byte",
        split: list[float] | tuple[float, ...] = (0.9, 0.05, 0.05),
        bptt: int = 100,
        batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        symbols: list[str] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("bptt", bptt), ("batch_size", batch_size)):
            check_positive(name, value)
        check_positive("eval_batch_size", eval_batch_size)
        if path is None or str(path) == "":
            raise ValueError("no text file given: set task.path=/path/to/file.txt")
        self.path, self.vocab_kind = Path(path).expanduser(), vocab
        self.bptt, self.batch_size, self.eval_batch_size = bptt, batch_size, eval_batch_size
        self.num_workers = num_workers
        if symbols is not None and vocab != "char":
            raise ValueError(f"symbols apply to vocab=char only, not vocab={vocab!r}")
        self.tokens, self.vocab = read_corpus(self.resolve(), vocab, symbols)
        self.bounds = split_bounds(len(self.tokens), list(split))
        self.check_train_size(world=1)
        self.check_learnable()

    def resolve(self) -> Path:
        """The file to read (subclasses fetch or verify it first)."""
        return self.path

    @property
    def vocab_size(self) -> int:
        return 256 if self.vocab is None else len(self.vocab)

    def split_tokens(self, split: str) -> np.ndarray:
        start, end = self.bounds[split]
        return self.tokens[start:end]

    def check_train_size(self, world: int) -> None:
        start, end = self.bounds["train"]
        needed = self.batch_size * world * self.bptt + 1
        if end - start < needed:
            raise ValueError(
                f"the train split has {end - start} tokens, fewer than batch_size x processes x "
                f"bptt + 1 = {needed} needed for one batch: lower batch_size or bptt, or use "
                "more text"
            )

    def check_learnable(self) -> None:
        """A train split of one repeated symbol gives a model nothing to learn (bits/char 0
        after a few steps): refuse it rather than report a meaningless result."""
        train = np.asarray(self.split_tokens("train"))
        if np.count_nonzero(np.bincount(train, minlength=2)) < 2:
            symbol = self.decode([int(train[0])])
            raise ValueError(
                f"the train split of {str(self.path)!r} is one symbol ({symbol!r}) repeated: "
                "there is nothing to learn; use a real text"
            )

    @staticmethod
    def stored_options(module_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The constructor options that rebuild this data as a trained model saw it, from
        what `module_kwargs` gave the model (its checkpoint's hyper-parameters)."""
        vocab = module_kwargs.get("vocab")
        return {} if vocab is None else {"symbols": list(vocab)}

    def module_kwargs(self) -> Characters:
        return {"vocab_size": self.vocab_size, "vocab": self.vocab}

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world()
        self.check_train_size(world)
        data = TrainWindows(self.split_tokens("train"), self.batch_size, self.bptt, rank, world)
        loader = ResumableLoader(data, batch_size=None, shuffle=False, num_workers=self.num_workers)
        return resumable(loader, self)

    def _eval_loader(self, split: str) -> DataLoader:
        rank, world = rank_and_world()
        data = EvalWindows(self.split_tokens(split), self.eval_batch_size, self.bptt, rank, world)
        return DataLoader(data, batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text (invalid UTF-8 byte sequences shown as U+FFFD)."""
        return decode(ids, self.vocab)


def encode(text: str, vocab: list[str] | None) -> list[int]:
    """Text -> token ids in ``vocab`` (None: UTF-8 bytes). Unknown characters: ValueError."""
    if vocab is None:
        return list(text.encode("utf-8"))
    index = {symbol: i for i, symbol in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        raise ValueError(
            f"characters {''.join(unknown)!r} are not in the model's vocabulary of "
            f"{len(vocab)} characters"
        )
    return [index[c] for c in text]


def decode(ids: list[int], vocab: list[str] | None) -> str:
    if vocab is None:
        return bytes(ids).decode("utf-8", errors="replace")
    return "".join(vocab[i] for i in ids)

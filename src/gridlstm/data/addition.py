"""Integer addition (spec section 3): ``a + b =`` then the sum, digit by digit.

Layout of one example with ``digits = n`` (all rows have the same length, so no padding):

    a_1 .. a_n  +  b_1 .. b_n  =  s_0 .. s_n  .
    <------------ prompt ----------> <-- answer -->

Operands are uniform over [0, 10^n) written with leading zeros, the sum has n + 1 digits
and ``.`` ends the answer [ours]. ``reverse=True`` writes every number least significant
digit first [ours; off by default]. Digits are generated directly as digit tensors, so any
n works (no integer overflow at n = 15 or beyond).

Validation and test sets are fixed by the seed and disjoint from each other; training
examples are drawn afresh every epoch (different per rank and worker) and never equal a
held-out problem.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gridlstm.nn.checks import check_positive

VOCAB = "0123456789+=."
PLUS, EQUALS, EOS = VOCAB.index("+"), VOCAB.index("="), VOCAB.index(".")
_SPLIT_STREAMS = {"val": 1, "test": 2, "pool": 3}


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def prompt_length(digits: int) -> int:
    return 2 * digits + 2


def answer_length(digits: int) -> int:
    """Sum digits plus the end token."""
    return digits + 2


def sample_operands(count: int, digits: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two (count, digits) tensors of decimal digits, most significant first."""
    ab = torch.randint(0, 10, (2, count, digits), generator=generator)
    return ab[0], ab[1]


def add_digits(a: Tensor, b: Tensor) -> Tensor:
    """Schoolbook addition of digit tensors (most significant first) -> (count, digits + 1)."""
    total = torch.zeros(a.shape[0], a.shape[1] + 1, dtype=torch.long)
    carry = torch.zeros(a.shape[0], dtype=torch.long)
    for i in range(a.shape[1] - 1, -1, -1):
        column = a[:, i] + b[:, i] + carry
        total[:, i + 1] = column % 10
        carry = column // 10
    total[:, 0] = carry
    return total


def encode(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """Token rows ``a + b = s .`` (see the module docstring)."""
    s = add_digits(a, b)
    if reverse:
        a, b, s = a.flip(1), b.flip(1), s.flip(1)
    count = a.shape[0]

    def column(token: int) -> Tensor:
        return torch.full((count, 1), token, dtype=torch.long)

    return torch.cat([a, column(PLUS), b, column(EQUALS), s, column(EOS)], dim=1)


def to_text(row: Tensor) -> str:
    return "".join(VOCAB[int(t)] for t in row)


def _keys(a: Tensor, b: Tensor) -> list[bytes]:
    """Hashable identity of each (a, b) problem."""
    return [r.tobytes() for r in torch.cat([a, b], 1).to(torch.uint8).numpy()]


def _unique_problems(
    count: int, digits: int, generator: torch.Generator, exclude: set[bytes]
) -> tuple[Tensor, set[bytes]]:
    """``count`` distinct problems, none in ``exclude``; returns token rows and their keys."""
    rows: list[Tensor] = []
    keys: set[bytes] = set()
    while len(keys) < count:
        a, b = sample_operands(2 * (count - len(keys)) + 16, digits, generator)
        for key, i in zip(_keys(a, b), range(a.shape[0]), strict=True):
            if key in exclude or key in keys:
                continue
            keys.add(key)
            rows.append(encode(a[i : i + 1], b[i : i + 1]))
            if len(keys) == count:
                break
    return torch.cat(rows), keys


class AdditionStream(IterableDataset):
    """Endless fresh training batches, ``batches_per_epoch`` per epoch per process.

    Each pass is seeded by (seed, pass, rank, worker), so ranks and workers see different
    data and reruns with the same seed see the same data.
    """

    def __init__(
        self,
        digits: int,
        batch_size: int,
        batches_per_epoch: int,
        seed: int,
        exclude: set[bytes],
        reverse: bool,
        pool: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.digits, self.batch_size, self.batches_per_epoch = digits, batch_size, batches_per_epoch
        self.seed, self.exclude, self.reverse, self.pool = seed, exclude, reverse, pool
        self.passes = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    @staticmethod
    def _stream_id() -> int:
        """A distinct id per (rank, dataloader worker)."""
        rank, _ = rank_and_world()
        worker = get_worker_info()
        return rank if worker is None else rank * worker.num_workers + worker.id

    def __iter__(self) -> Iterator[Tensor]:
        stream = self._stream_id()
        seed = np.random.SeedSequence([self.seed, self.passes, stream]).generate_state(1)[0]
        self.passes += 1
        generator = torch.Generator().manual_seed(int(seed))
        for _ in range(self.batches_per_epoch):
            if self.pool is not None:
                index = torch.randint(
                    0, self.pool.shape[0], (self.batch_size,), generator=generator
                )
                yield self.pool[index]
                continue
            a, b = sample_operands(self.batch_size, self.digits, generator)
            while held_out := [i for i, k in enumerate(_keys(a, b)) if k in self.exclude]:
                a[held_out], b[held_out] = sample_operands(len(held_out), self.digits, generator)
            yield encode(a, b, self.reverse)


class AdditionDataModule(L.LightningDataModule):
    """Random ``digits``-digit additions generated from ``seed``.

    Args:
        digits: number of digits of each operand (>= 1).
        reverse: write numbers least significant digit first.
        batch_size: training batch size per process.
        eval_batch_size: batch size for validation and test.
        batches_per_epoch: training batches per epoch and process (validation runs after each).
        val_size, test_size: fixed held-out problems.
        train_pool: if set, train on a fixed pool of this many problems instead of fresh ones
            (used by the overfit debug preset).
        seed: seeds every split.
    """

    def __init__(
        self,
        digits: int = 3,
        reverse: bool = False,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        batches_per_epoch: int = 100,
        val_size: int = 1000,
        test_size: int = 1000,
        train_pool: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        sizes = dict(
            digits=digits,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            batches_per_epoch=batches_per_epoch,
            val_size=val_size,
            test_size=test_size,
        )
        for name, value in sizes.items():
            check_positive(name, value)
        if train_pool is not None:
            check_positive("train_pool", train_pool)
        problems = 100**digits
        if 2 * (val_size + test_size) > problems:
            raise ValueError(
                f"val_size + test_size = {val_size + test_size} is more than half of the "
                f"{problems} distinct problems with digits={digits}; lower them or raise digits"
            )
        self.digits, self.reverse = digits, reverse
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.batches_per_epoch, self.train_pool = batches_per_epoch, train_pool
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.vocab_size = len(VOCAB)
        self.prompt_length = prompt_length(digits)
        self.answer_length = answer_length(digits)
        self.splits: dict[str, Tensor] = {}
        self._held_out: set[bytes] = set()

    def module_kwargs(self) -> dict[str, int]:
        """What the task's LightningModule needs to know about the data layout."""
        return {
            "vocab_size": self.vocab_size,
            "prompt_length": self.prompt_length,
            "answer_length": self.answer_length,
            "end_token": EOS,
        }

    def _generator(self, split: str) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, _SPLIT_STREAMS[split]]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(state))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        held_out: set[bytes] = set()
        for split, size in (("val", self.val_size), ("test", self.test_size)):
            rows, keys = _unique_problems(size, self.digits, self._generator(split), held_out)
            self.splits[split] = self._orient(rows)
            held_out |= keys
        if self.train_pool is not None:
            rows, _ = _unique_problems(
                self.train_pool, self.digits, self._generator("pool"), held_out
            )
            self.splits["pool"] = self._orient(rows)
        self._held_out = held_out

    def _orient(self, rows: Tensor) -> Tensor:
        """Re-encode rows (built most-significant-first) in the configured digit order."""
        if not self.reverse:
            return rows
        n = self.digits
        return encode(rows[:, :n], rows[:, n + 1 : 2 * n + 1], reverse=True)

    def train_dataloader(self) -> DataLoader:
        stream = AdditionStream(
            self.digits,
            self.batch_size,
            self.batches_per_epoch,
            self.seed,
            self._held_out,
            self.reverse,
            pool=self.splits.get("pool"),
        )
        return DataLoader(stream, batch_size=None)

    def _eval_loader(self, split: str) -> DataLoader:
        # Each rank scores a disjoint slice, every example exactly once (a DistributedSampler
        # would pad with duplicates); torchmetrics sums the counts across ranks.
        rank, world = rank_and_world()
        return DataLoader(self.splits[split][rank::world], batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

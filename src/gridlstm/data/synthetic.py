"""Synthetic tasks generated from a seed (addition, memorization, parity).

What they share lives here: validation and test sets fixed by the seed and disjoint from
each other; training problems drawn afresh every epoch, never equal to a held-out problem,
different per rank and dataloader worker; evaluation sharded over ranks without padding.

A subclass says how to draw raw problems (`sample`), how many distinct problems exist
(`num_problems`), and how a raw problem becomes a model-facing row (`encode`). Disjointness
is decided on the raw problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gridlstm.data.position import ResumableLoader, epoch_of, resumable
from gridlstm.data.shards import rank_and_world
from gridlstm.nn.checks import check_positive

_SPLIT_STREAMS = {"val": 1, "test": 2, "pool": 3}


def keys(problems: Tensor) -> list[bytes]:
    """Hashable identity of each raw problem row (small non-negative integers)."""
    return [row.tobytes() for row in problems.to(torch.int16).numpy()]


class ProblemStream(IterableDataset):
    """Endless fresh training batches, ``batches_per_epoch`` per epoch per process.

    Each pass is seeded by (seed, epoch, rank, worker), so ranks and workers see different
    data, reruns with the same seed see the same data, and a resumed run continues the
    stream it was reading (`gridlstm.data.position`).
    """

    def __init__(
        self, source: SyntheticDataModule, exclude: set[bytes], pool: Tensor | None
    ) -> None:
        super().__init__()
        self.source, self.exclude, self.pool = source, exclude, pool
        self.passes = 0

    def __len__(self) -> int:
        return self.source.batches_per_epoch

    @staticmethod
    def _stream_id() -> int:
        """A distinct id per (rank, dataloader worker)."""
        rank, _ = rank_and_world()
        worker = get_worker_info()
        return rank if worker is None else rank * worker.num_workers + worker.id

    def __iter__(self) -> Iterator[Tensor]:
        source = self.source
        epoch = epoch_of(source, self.passes)
        state = np.random.SeedSequence([source.seed, epoch, self._stream_id()])
        self.passes += 1
        # A draw equal to a held-out problem is replaced from a generator of its own, so the
        # rest of the stream does not depend on which problems are held out (data_seed).
        first, second = (int(word) for word in state.generate_state(2))
        generator = torch.Generator().manual_seed(first)
        replacements = torch.Generator().manual_seed(second)
        for _ in range(len(self)):
            if self.pool is not None:
                index = torch.randint(0, len(self.pool), (source.batch_size,), generator=generator)
                yield self.pool[index]
                continue
            problems = source.sample(source.batch_size, generator)
            while held_out := [i for i, k in enumerate(keys(problems)) if k in self.exclude]:
                problems[held_out] = source.sample(len(held_out), replacements)
            yield source.encode(problems)


class SyntheticDataModule(L.LightningDataModule):
    """Base of the seeded synthetic tasks.

    Args:
        batch_size: training batch size per process.
        eval_batch_size: batch size for validation and test.
        batches_per_epoch: training batches per epoch and process (validation runs after each).
        val_size, test_size: fixed held-out problems.
        train_pool: if set, train on a fixed pool of this many problems instead of fresh ones
            (used by the overfit debug preset).
        seed: seeds the training stream.
        data_seed: seeds the held-out sets (and the pool); None: ``seed``. Fixed in the task
            configs, so a sweep over ``seed`` varies only the model's initialisation and the
            training data, never the problems it is scored on.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        batches_per_epoch: int = 100,
        val_size: int = 1000,
        test_size: int = 1000,
        train_pool: int | None = None,
        seed: int = 0,
        data_seed: int | None = None,
    ) -> None:
        super().__init__()
        sizes = dict(
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
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.batches_per_epoch, self.train_pool = batches_per_epoch, train_pool
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.data_seed = seed if data_seed is None else data_seed
        self.splits: dict[str, Tensor] = {}
        self._held_out: set[bytes] = set()

    # ------------------------------------------------------------------ subclass API
    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` raw problems (rows of small non-negative integers)."""
        raise NotImplementedError

    def num_problems(self) -> int:
        """How many distinct raw problems exist."""
        raise NotImplementedError

    def encode(self, problems: Tensor) -> Tensor:
        """Raw problems -> the rows the model sees."""
        raise NotImplementedError

    def module_kwargs(self) -> Mapping[str, Any]:
        """What the task's LightningModule needs to know about the data: one of the
        contracts in `gridlstm.data.contracts`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared machinery
    def check_held_out_sizes(self, what: str) -> None:
        """Call at the end of a subclass's __init__: held-out sets must leave problems over."""
        problems = self.num_problems()
        if 2 * (self.val_size + self.test_size) > problems:
            raise ValueError(
                f"val_size + test_size = {self.val_size + self.test_size} is more than half of "
                f"the {problems} distinct problems with {what}; lower them or make the task larger"
            )

    def _generator(self, split: str) -> torch.Generator:
        state = np.random.SeedSequence([self.data_seed, _SPLIT_STREAMS[split]])
        state = state.generate_state(1)[0]
        return torch.Generator().manual_seed(int(state))

    def _unique(self, count: int, split: str, exclude: set[bytes]) -> tuple[Tensor, set[bytes]]:
        """``count`` distinct raw problems, none in ``exclude``."""
        generator = self._generator(split)
        rows: list[Tensor] = []
        found: set[bytes] = set()
        while len(found) < count:
            candidates = self.sample(2 * (count - len(found)) + 16, generator)
            for key, row in zip(keys(candidates), candidates, strict=True):
                if key in exclude or key in found:
                    continue
                found.add(key)
                rows.append(row)
                if len(found) == count:
                    break
        return torch.stack(rows), found

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        held_out: set[bytes] = set()
        for split, size in (("val", self.val_size), ("test", self.test_size)):
            problems, found = self._unique(size, split, held_out)
            self.splits[split] = self.encode(problems)
            held_out |= found
        if self.train_pool is not None:
            problems, _ = self._unique(self.train_pool, "pool", held_out)
            self.splits["pool"] = self.encode(problems)
        self._held_out = held_out

    def train_dataloader(self) -> DataLoader:
        stream = ProblemStream(self, self._held_out, self.splits.get("pool"))
        return resumable(ResumableLoader(stream, batch_size=None), self)

    def _eval_loader(self, split: str) -> DataLoader:
        # Each rank scores a disjoint slice, every example exactly once (a DistributedSampler
        # would pad with duplicates); torchmetrics sums the counts across ranks.
        rank, world = rank_and_world()
        return DataLoader(self.splits[split][rank::world], batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

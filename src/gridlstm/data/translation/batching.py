"""Batches of sentence pairs: the dataset, padding collate and a length-bucketing sampler."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from gridlstm.data.shards import rank_and_world
from gridlstm.data.translation.tokenizers import BOS, EOS, PAD


class PairDataset(Dataset):
    """Token ids of both sides plus the raw reference (BLEU scores raw text)."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]], refs: list[str]):
        self.sources, self.targets, self.refs = sources, targets, refs

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[list[int], list[int], str, int]:
        return self.sources[index], self.targets[index], self.refs[index], index


def collate(items: list[tuple[list[int], list[int], str, int]]) -> dict[str, Any]:
    """Right-padded source; decoder input <s> y and output y </s>; references and indices."""
    batch = len(items)
    src_len = torch.tensor([len(s) for s, *_ in items])
    tgt_len = torch.tensor([len(t) + 1 for _, t, *_ in items])
    src = torch.full((batch, int(src_len.max())), PAD, dtype=torch.long)
    tgt_in = torch.full((batch, int(tgt_len.max())), PAD, dtype=torch.long)
    tgt_out = torch.full_like(tgt_in, PAD)
    for row, (s, t, _, _) in enumerate(items):
        src[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        tgt_in[row, : len(t) + 1] = torch.tensor([BOS, *t], dtype=torch.long)
        tgt_out[row, : len(t) + 1] = torch.tensor([*t, EOS], dtype=torch.long)
    return {
        "src": src,
        "src_lengths": src_len,
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "refs": [r for *_, r, _ in items],
        "index": torch.tensor([i for *_, i in items]),
    }


class BucketSampler(Sampler[list[int]]):
    """Shuffled batches of similar lengths: the Reencoder's cost grows with source x target
    length, so padding a short pair to a long one wastes a whole rectangle. Pools of
    ``pool`` batches are sorted by length and cut into batches; batch order is shuffled.
    Each epoch draws a new order from (seed, epoch); each rank takes every world-th batch."""

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        pool: int = 50,
        epoch: Callable[[int], int] | None = None,
    ):
        self.lengths, self.batch_size, self.seed, self.pool = lengths, batch_size, seed, pool
        self.passes = 0
        self.epoch_of = epoch  # the trainer's epoch (given this sampler's pass count)
        self.rank, self.world = rank_and_world()

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world  # equal counts on every rank
        return batches[self.rank : usable : self.world]

    def __iter__(self):
        epoch = self.passes if self.epoch_of is None else self.epoch_of(self.passes)
        self.passes += 1
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        full = -(-len(self.lengths) // self.batch_size)
        return full // self.world

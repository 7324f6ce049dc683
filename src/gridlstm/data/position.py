"""Where training is in its data, so that a resumed run reads what the uninterrupted run
would have read.

Two pieces. The *epoch* seeds each pass over the training data (synthetic problems, shuffles,
bucket orders); it is the trainer's epoch counter, which Lightning restores from a checkpoint,
rather than a counter in the loader that restarts at 0. The *batch within the epoch* matters
after a mid-epoch checkpoint (preemption, ``val_check_interval`` validations): a
`ResumableLoader` is stateful in Lightning's sense (``state_dict`` / ``load_state_dict``),
so Lightning stores the batches already trained on and, on a mid-epoch resume, the loader
skips them. Batches are regenerated and dropped rather than seeked; skipping costs a fraction
of the time of training on them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
from torch.utils.data import DataLoader


def epoch_of(datamodule: L.LightningDataModule, fallback: int) -> int:
    """The trainer's current epoch when ``datamodule`` is attached to one, else ``fallback``
    (a loader used on its own counts its passes)."""
    trainer = getattr(datamodule, "trainer", None)
    return fallback if trainer is None else int(trainer.current_epoch)


def batches_done(datamodule: L.LightningDataModule) -> int:
    """Training batches of the current epoch already run (Lightning's own progress count)."""
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:
        return 0
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)


class ResumableLoader(DataLoader):
    """A DataLoader whose checkpointed state is the number of batches of the current epoch
    already trained on (read through ``position``); after ``load_state_dict`` the next pass
    starts after them."""

    position: Callable[[], int] = staticmethod(lambda: 0)
    _skip: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"batches": int(self.position())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._skip = int(state_dict.get("batches", 0))

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        iterator = super().__iter__()
        return itertools.islice(iterator, skip, None) if skip else iterator


def resumable(loader: ResumableLoader, datamodule: L.LightningDataModule) -> ResumableLoader:
    loader.position = lambda: batches_done(datamodule)
    return loader


def shuffled_loader(
    dataset: Any, datamodule: L.LightningDataModule, batch_size: int, seed: int, **kwargs: Any
) -> ResumableLoader:
    """The training loader of a finite dataset: each rank its share, shuffled anew every epoch.
    Lightning calls ``set_epoch`` on the sampler with the trainer's epoch, so the shuffle is
    drawn from (seed, epoch) and a resumed run shuffles as the uninterrupted one did.
    ``kwargs`` go to the DataLoader (``drop_last``, ``collate_fn``, ``num_workers``)."""
    from torch.utils.data import DistributedSampler

    from gridlstm.data.shards import rank_and_world

    rank, world = rank_and_world()
    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=seed)
    loader = ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
    return resumable(loader, datamodule)

"""Which share of the data this process reads: its rank among the training processes.

Under DDP every process must read different training batches (synthetic problems, bucketed
translation pairs); a process outside any process group is rank 0 of 1.
"""

from __future__ import annotations

import torch


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, the number of training processes)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1

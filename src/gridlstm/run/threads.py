"""CPU threads for PyTorch's intra-op parallelism (``hardware.threads``).

PyTorch defaults to one thread per physical core. OpenMP threads spin while they wait, so on
a machine that is already busy (another training run, a test suite) every extra thread
steals time from the others and a run can slow down by an order of magnitude. ``auto``
therefore takes the cores that are not already busy (from the 1-minute load average,
measured before this run adds its own), divided among the processes this run starts on the
machine (``ddp_cpu``: one per device), and at least 1. An integer sets the count
exactly. Measured options: docs/configuration.md, "Console and CPU threads".
"""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores() -> int:
    try:
        return int(os.getloadavg()[0] + 0.5)
    except OSError:
        return 0


def resolve(setting: int | str | None, processes: int = 1) -> int:
    """The thread count for ``setting`` (``auto``, null = auto, or an integer >= 1)."""
    if setting is None or setting == "auto":
        free = max(1, available_cores() - busy_cores())
        return max(1, free // max(1, processes))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be 'auto' or an integer >= 1, got {setting!r}")
    return setting


def apply(setting: int | str | None, processes: int = 1) -> int:
    """Set torch's intra-op thread count; returns it."""
    threads = resolve(setting, processes)
    torch.set_num_threads(threads)
    return threads

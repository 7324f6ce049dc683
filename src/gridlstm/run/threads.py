"""CPU threads for PyTorch's intra-op parallelism (``hardware.threads``).

PyTorch defaults to one thread per physical core. On a machine that other jobs keep busy,
every thread beyond the free cores waits for a core at each of the many small parallel
regions of a recurrent step, and a run slows down by up to an order of magnitude. ``auto``
therefore takes the cores that are free *now*: the CPU time every other process used on
this process's cores over a short sample (`SAMPLE_SECONDS`, psutil's per-core counters), not
a load average that still counts jobs that ended a minute ago. The free cores are divided
among the processes this run starts on the machine (``ddp_cpu``: one per device), at least 1.
An integer sets the count exactly. Measured: docs/configuration.md, "Console and CPU threads".
"""

from __future__ import annotations

import os

SAMPLE_SECONDS = 0.25  # a busy core is busy over any quarter second; short at start-up


def _allowed_cpus() -> list[int] | None:
    """The cores this process may run on (its affinity), where the OS says."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def available_cores() -> int:
    cpus = _allowed_cpus()
    return len(cpus) if cpus is not None else os.cpu_count() or 1


def sample_busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores' worth of CPU time that other processes used on this process's cores over the
    next ``seconds`` (this process's own use over the sample subtracted)."""
    import psutil

    own = psutil.Process()
    before = sum(own.cpu_times()[:2])
    per_cpu = psutil.cpu_percent(interval=seconds, percpu=True)
    own_cores = (sum(own.cpu_times()[:2]) - before) / seconds
    cpus = _allowed_cpus()
    if cpus is not None and all(cpu < len(per_cpu) for cpu in cpus):
        per_cpu = [per_cpu[cpu] for cpu in cpus]
    return max(0.0, sum(per_cpu) / 100 - own_cores)


def busy_cores() -> int:
    """Busy cores now, rounded (a core more than half busy counts; `sample_busy_cores`)."""
    try:
        return int(sample_busy_cores() + 0.5)
    except (OSError, RuntimeError):  # no per-core counters here: count the machine as quiet
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
    import torch

    threads = resolve(setting, processes)
    torch.set_num_threads(threads)
    return threads

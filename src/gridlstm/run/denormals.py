"""Flushing subnormal floats to zero on the CPU (``hardware.flush_denormal``).

Why: a deep tied net whose memories decay through many layers (a forget gate below one, applied
at every layer) can fill its activations and gradients with subnormal numbers, which x86 CPUs
compute in microcode, many times slower. Measured (docs/configuration.md, "Subnormal numbers"):
the tied 1-LSTM at depth 64 took 345 to 1044 ms a training step with them, 31 to 41 ms with
flushing, once its runs had filled with them. Flushing changes only
values below about 1.2e-38 (float32's smallest normal number) to zero. Off by default, so that
a run resumed from an earlier checkpoint computes what it computed before.
"""

from __future__ import annotations

from gridlstm.run.errors import ConfigError


def check(setting: object) -> bool:
    """The setting as a bool; anything else is one line naming the choices."""
    if not isinstance(setting, bool):
        raise ConfigError(f"hardware.flush_denormal={setting!r}: true or false")
    return setting


def apply(setting: object) -> str:
    """Set the CPU's flush-to-zero mode; returns the line the run logs. On a CPU without the
    mode (torch.set_flush_denormal returns False) the run goes on without it and says so."""
    import torch

    if not check(setting):
        torch.set_flush_denormal(False)
        return "subnormal floats: kept (hardware.flush_denormal=false)"
    if torch.set_flush_denormal(True):
        return "subnormal floats: flushed to zero (hardware.flush_denormal=true)"
    return "subnormal floats: kept; this CPU cannot flush them (hardware.flush_denormal=true)"

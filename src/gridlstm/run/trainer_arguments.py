"""The ``trainer`` and ``hardware`` groups as `lightning.Trainer` keyword arguments.

Why one function: the start-up check (`gridlstm.run.config.check_hardware`) builds a Trainer
to let Lightning refuse a bad combination before any work, and the run builds the real one
(`gridlstm.run.build.build_trainer`); both read the groups here, so a new hardware key is
handled once and the check tests exactly what the run will get.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

# The hardware group's own keys, applied by the suite rather than passed to the Trainer:
# the config's name, CPU threads (gridlstm.run.threads), CUDA graphs (gridlstm.run.cuda_graphs),
# flushing subnormal floats (gridlstm.run.denormals).
SUITE_KEYS = ("name", "threads", "cuda_graphs", "flush_denormal")


def trainer_arguments(trainer: DictConfig, hardware: DictConfig) -> dict[str, Any]:
    """``trainer`` options updated with the hardware group's accelerator, devices, precision
    and strategy (a strategy config instantiated)."""
    from hydra.utils import instantiate

    kwargs = OmegaConf.to_container(trainer, resolve=True)
    options = OmegaConf.to_container(hardware, resolve=True)
    for key in SUITE_KEYS:
        options.pop(key, None)
    if isinstance(options.get("strategy"), dict):
        options["strategy"] = instantiate(options["strategy"])
    kwargs.update(options)
    return kwargs

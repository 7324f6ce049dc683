"""Start-up checks on the composed config: fail in one line, before any work.

Hydra itself rejects unknown config-group options (naming the available ones); this module
adds what Hydra cannot know: which models fit which tasks, and the value checks done by the
constructors of the data module and the backbone, reported with the config group they
came from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from gridlstm import launch

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config value or combination; the message is one line for the user."""


def config_dir() -> Path | None:
    """The primary config directory of the running Hydra app (the repo's ``conf/``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    return None


def models_for(input_kind: str, conf: Path | None) -> list[str]:
    if conf is None:
        return []
    names = []
    for path in sorted((conf / "model").glob("*.yaml")):
        if OmegaConf.load(path).get("input_kind") == input_kind:
            names.append(path.stem)
    return names


def check_compatible(cfg: DictConfig, conf: Path | None = None) -> None:
    """The model must accept the kind of input the task provides (vector, sequence, ...)."""
    model_kind, task_kind = cfg.model.get("input_kind"), cfg.task.get("input_kind")
    if model_kind == task_kind:
        return
    choices = ", ".join(models_for(task_kind, conf or config_dir())) or "none"
    raise ConfigError(
        f"model={cfg.model.name} takes {model_kind} input but task={cfg.task.name} provides "
        f"{task_kind} input; models for task={cfg.task.name}: {choices}"
    )


def check_launch() -> None:
    if launch.externally_launched() and launch.shared_run_id() is None:
        raise ConfigError(
            "several processes were launched externally but they share no run id, so they "
            "would write to different directories; set GRIDLSTM_RUN_ID (same value on every "
            "rank), run under srun, or use torchrun --rdzv-id=<id> / --standalone"
        )


def build(what: str, factory: Callable[[], T]) -> T:
    """Call ``factory``; turn a constructor's ValueError into a one-line ConfigError."""
    try:
        return factory()
    except InstantiationException as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        raise ConfigError(f"{what}: {cause}") from error
    except ValueError as error:
        raise ConfigError(f"{what}: {error}") from error

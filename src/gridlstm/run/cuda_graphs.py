"""The ``hardware.cuda_graphs`` option: its checks with the hardware config, and switching a
model's GridLSTMs to CUDA graph replay (`gridlstm.nn.graphs`) once the data is known."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridlstm.nn import GridLSTM, graphs
from gridlstm.run.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L
    from omegaconf import DictConfig


def check(option: object, accelerator: str, hardware: dict, accumulate: int = 1) -> None:
    """``hardware.cuda_graphs`` (`gridlstm.nn.graphs`): a bool, on one CUDA GPU, without
    autocast (Lightning's autocast caches weight casts across steps, which a graph cannot
    hold) and without gradient accumulation (``trainer.accumulate_grad_batches``): a graphed
    backward accumulating into ``.grad`` gives 2 g2 instead of g1 + g2 (an open PyTorch
    issue with make_graphed_callables)."""
    if not isinstance(option, bool):
        raise ConfigError(f"hardware.cuda_graphs={option}: give true or false")
    if not option:
        return
    if accelerator not in ("gpu", "cuda"):
        raise ConfigError(
            f"hardware.cuda_graphs=true records CUDA graphs: it needs a GPU (hardware=gpu), "
            f"got accelerator={accelerator}"
        )
    precision = str(hardware.get("precision", "32-true"))
    if "mixed" in precision:
        raise ConfigError(
            f"hardware.cuda_graphs=true cannot record under autocast (precision={precision}): "
            "use hardware.precision=32-true, bf16-true or 16-true"
        )
    if accumulate != 1:
        raise ConfigError(
            f"hardware.cuda_graphs=true with trainer.accumulate_grad_batches={accumulate}: "
            "graphed backwards do not accumulate gradients correctly (PyTorch's "
            "make_graphed_callables); use accumulate_grad_batches=1 or drop hardware.cuda_graphs"
        )
    devices = hardware.get("devices", 1)
    if devices != 1 or isinstance(hardware.get("strategy"), dict):
        raise ConfigError(
            f"hardware.cuda_graphs=true runs on one GPU (devices=1, no DDP strategy); got "
            f"devices={devices}"
        )


def apply(cfg: DictConfig, module: L.LightningModule, datamodule: L.LightningDataModule) -> int:
    """With ``hardware.cuda_graphs=true``, every GridLSTM of the model replays CUDA graphs
    (`gridlstm.nn.graphs`); returns how many. Refused, before any work, for a task whose
    batch shapes vary and for a model without a GridLSTM."""
    if not cfg.hardware.get("cuda_graphs", False):
        return 0
    reason = getattr(datamodule, "shapes_vary", None)
    if reason:
        raise ConfigError(
            f"hardware.cuda_graphs=true needs fixed batch shapes, but task={cfg.task.name}: "
            f"{reason}; drop hardware.cuda_graphs"
        )
    nets = [m for m in module.modules() if isinstance(m, GridLSTM)]
    if not nets:
        raise ConfigError(
            f"hardware.cuda_graphs=true graphs GridLSTM backbones; model={cfg.model.name} has none"
        )
    for net in nets:
        graphs.graphed(net)
    return len(nets)

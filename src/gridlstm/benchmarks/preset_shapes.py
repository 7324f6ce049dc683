"""The bench's "preset shapes" section (``python -m gridlstm.bench presets=true``): each CPU
preset's Grid LSTM against a stacked LSTM at the same width, depth, batch and length.

The bench's other parts time the grid at one large shape (d 256, T 100), where the matrix
work dominates; the presets train at small widths and short sequences, where fixed costs
per step do. So this part times what a preset's run does: Lightning training steps
(forward, backward, gradient clipping at 1.0, Adam; no logger or callbacks), median over
``repeats`` steps after ``warmup``, on 1 and then 2 threads (or the counts asked for), in one
process, the grid and then its comparison at each thread count.

* The grid is the preset's own task module, built as ``train.py`` builds it (the preset's
  config, its width solved from ``param_budget``), on a batch of the preset's shape.
* Its comparison, for the sequence presets, is the task's ``stacked_lstm`` model at the
  grid's width and depth (``param_budget`` off). Parity (a vector) and MNIST (an image) have
  no stacked LSTM model; there it is `torch.nn.LSTM` at the grid's width and depth over a
  sequence of the grid's length (1 for the 1-LSTM, which reads its input once; the 7 x 7
  patches for MNIST), loss the output's mean.
* ``text_cpu`` reads a corpus; here it reads a generated one of 96 characters (the preset's
  page names its real vocabulary), so its width is solved for that vocabulary.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.utils.data import DataLoader

from gridlstm.nn import GridLSTM
from gridlstm.nn.sizing import forward_flops
from gridlstm.run.build import build_module
from gridlstm.run.console import lightning_info_silenced, quiet_third_party

# preset: overrides that pick its grid model (the sweep's deepest, where it sweeps depth)
PRESETS: dict[str, list[str]] = {
    "default": [],
    "parity_cpu": ["experiment=parity_cpu", "model.net.num_layers=16", "task.datamodule.bits=16"],
    "addition_cpu": ["experiment=addition_cpu", "model=grid2d", "model.net.num_layers=4"],
    "memorization_cpu": ["experiment=memorization_cpu", "model=grid2d", "model.net.num_layers=4"],
    "text_cpu": ["experiment=text_cpu"],
    "mnist_cpu": ["experiment=mnist_cpu"],
}
CORPUS_CHARACTERS = 96


class LSTMShape(L.LightningModule):
    """`torch.nn.LSTM` (width, width, depth) over (batch, length, width), loss the output's
    mean: the comparison where a task has no stacked LSTM model."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(width, width, depth, batch_first=True)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.lstm(batch)[0].mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class StepTimer(L.Callback):
    """Wall time of each training step, from batch start to batch end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def seconds_per_step(module: L.LightningModule, batch: Any, steps: int, warmup: int) -> float:
    """Median seconds of a Lightning training step of ``module`` on ``batch``."""
    timer = StepTimer()
    with lightning_info_silenced(), warnings.catch_warnings():
        quiet_third_party()
        warnings.filterwarnings("ignore", "You defined a `validation_step` but have no")
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=warmup + steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            gradient_clip_val=1.0,
            callbacks=[timer],
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        loader = DataLoader([batch] * (warmup + steps), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    return statistics.median(timer.seconds[warmup:])


@contextmanager
def corpus() -> Iterator[Path]:
    """A generated text file for ``text_cpu`` (its own corpus is a file the user provides)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        generator = torch.Generator().manual_seed(0)
        codes = torch.randint(32, 32 + CORPUS_CHARACTERS, (400_000,), generator=generator)
        path.write_text("".join(map(chr, codes.tolist())))
        yield path


def compose_preset(conf: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base=None):
        cfg = compose("train", overrides=[*overrides, "logger=none"])
    if "num_workers" in cfg.task.datamodule:  # one batch is read: no worker processes
        with open_dict(cfg):
            cfg.task.datamodule.num_workers = 0
    return cfg


def data_for(cfg: DictConfig) -> Any:
    """The preset's data module; for MNIST one that was never loaded (its module arguments
    are constants, and the images are files the user provides)."""
    if cfg.task.input_kind != "image":
        return instantiate(cfg.task.datamodule)
    data_class = get_class(cfg.task.datamodule._target_)
    return data_class.__new__(data_class)


def first_batch(cfg: DictConfig, datamodule: L.LightningDataModule) -> Any:
    if cfg.task.input_kind == "image":  # MNIST: a batch of its shape (no files needed)
        size = cfg.task.datamodule.batch_size
        return torch.randn(size, 1, 28, 28), torch.randint(0, 10, (size,))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


def only(module: nn.Module, kind: type) -> nn.Module:
    (found,) = [m for m in module.modules() if isinstance(m, kind)]
    return found


def width_depth(module: L.LightningModule) -> tuple[int, int]:
    grid = only(module, GridLSTM)
    return grid.hidden_size, grid.num_layers


@contextmanager
def first_inputs(net: nn.Module) -> Iterator[list]:
    """The positional inputs of ``net``'s first call inside the block."""
    seen: list = []

    def keep(_: nn.Module, args: tuple) -> None:
        if not seen:
            seen.append(tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))

    handle = net.register_forward_pre_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


def grid_flops(grid: nn.Module, inputs: tuple) -> int:
    """Forward FLOPs of the grid's GEMMs on ``inputs`` (`gridlstm.nn.sizing.forward_flops`)."""
    return forward_flops(grid, *inputs)


def lstm_flops(lstm: nn.LSTM, inputs: tuple) -> int:
    """Forward FLOPs of `torch.nn.LSTM`'s GEMMs: 2 x 4d x (input + d) per row and layer."""
    x = inputs[0]
    rows = x.shape[0] * x.shape[1]
    d, sizes = lstm.hidden_size, [lstm.input_size] + [lstm.hidden_size] * (lstm.num_layers - 1)
    return sum(2 * rows * 4 * d * (size + d) for size in sizes)


Pair = tuple[dict, L.LightningModule, Any, L.LightningModule, Any]


def preset_pair(conf: Path, preset: str, text: Path) -> Pair:
    """(row, grid module, its batch, comparison module, its batch) for ``preset``."""
    overrides = list(PRESETS[preset])
    if preset == "text_cpu":
        overrides.append(f"task.path={text}")
    cfg = compose_preset(conf, overrides)
    torch.manual_seed(0)
    datamodule = data_for(cfg)
    batch = first_batch(cfg, datamodule)
    grid = build_module(cfg, datamodule)
    width, depth = width_depth(grid)
    row: dict[str, Any] = {"model": cfg.model.name, "hidden": width, "layers": depth}
    if cfg.task.input_kind == "sequence":
        lstm_cfg = compose_preset(
            conf,
            [
                *overrides,
                "model=stacked_lstm",
                "param_budget=null",
                f"model.net.hidden_size={width}",
                f"model.net.num_layers={depth}",
            ],
        )
        other, other_batch = build_module(lstm_cfg, datamodule), batch
        row.update(batch=batch.shape[0], length=batch.shape[1] - 1, comparison="stacked_lstm")
    else:
        length = 1 if cfg.task.input_kind == "vector" else (28 // cfg.model.net.patch_size) ** 2
        size = batch[0].shape[0] if isinstance(batch, (tuple, list)) else batch.shape[0]
        other, other_batch = LSTMShape(width, depth), torch.randn(size, length, width)
        row.update(batch=size, length=length, comparison="nn.LSTM")
    row.update(
        params=grid.num_parameters, comparison_params=sum(p.numel() for p in other.parameters())
    )
    return row, grid, batch, other, other_batch


def bench_presets(
    conf: Path, threads: tuple[int, ...] = (1, 2), repeats: int = 20, warmup: int = 3
) -> dict[str, dict]:
    """Seconds per training step of each preset's grid and its comparison, per thread
    count, their ratio (grid / comparison), and the ratio of their recurrent parts'
    forward FLOPs (the ratio the step times would have at equal efficiency)."""
    results: dict[str, dict] = {}
    before = torch.get_num_threads()
    try:
        with corpus() as text:
            for preset in PRESETS:
                row, grid, batch, other, other_batch = preset_pair(conf, preset, text)
                for count in threads:
                    torch.set_num_threads(count)
                    with first_inputs(only(grid, GridLSTM)) as grid_in:
                        grid_s = seconds_per_step(grid, batch, repeats, warmup)
                    with first_inputs(only(other, nn.LSTM)) as other_in:
                        other_s = seconds_per_step(other, other_batch, repeats, warmup)
                    row[f"{count}_threads"] = {
                        "grid_ms": 1e3 * grid_s,
                        "comparison_ms": 1e3 * other_s,
                        "ratio": grid_s / other_s,
                    }
                flops = grid_flops(only(grid, GridLSTM), grid_in[0])
                row["flop_ratio"] = flops / lstm_flops(only(other, nn.LSTM), other_in[0])
                results[preset] = row
    finally:
        torch.set_num_threads(before)
    return results

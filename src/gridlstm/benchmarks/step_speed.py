"""Seconds of training per 100,000 samples for each model at one shape, through the real loop:
the step-time mode of the benchmark command (``scripts/step_speed.py``, where earlier records
name it, runs the same).

Why: a study's plan (which depths and lengths fit in a budget of core-hours) needs each
family's cost at the study's own shape, measured the same way for every family: the
LightningModule and data module the run builds, Lightning's training loop (forward, backward,
Adam, gradient clipping), no validation, timed after a warm-up, in one process.

    python -m gridlstm.bench steps experiment=deep_tied task.datamodule.batch_size=15 \
        task.datamodule.digits=5 -- grid2d:1,2,4,8,16 grid2d_untied:1,2,4 stacked_lstm:1,2,4

Overrides before ``--`` apply to every model; after it, ``model:depths``. One line per model
and depth (parameters, seconds per 100k samples, the ratio to the stacked LSTM of the same
depth where measured); ``threads=N`` (default 1) sets torch's threads, ``steps=N`` and
``warmup=N`` (60, 10) the timed and untimed optimizer steps. The run's ``hardware`` group
picks the device and precision (``hardware=gpu hardware.precision=32-true`` times a GPU
study's shape; the clock waits for the GPU's queued work at both ends). ``synthetic_mnist=1``
times an MNIST preset without the real files: random pixels at the official sizes in a
temporary ``data_dir`` (a step's time depends on the shapes only); ``synthetic_enwik8=1`` the
same for an enwik8 preset (random bytes). ``json=PATH`` also writes
the rows (model, depth, parameters, seconds per 100k) with the command's overrides, device and
threads: what `gridlstm.benchmarks.gpu_check` and the presets' stated costs read.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = "gridlstm.bench steps"


def measure(overrides: list[str], steps: int, warmup: int) -> tuple[int, float]:
    """(parameters, seconds per 100k samples) over ``steps`` optimizer steps after ``warmup``."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from lightning.pytorch.callbacks import Callback

    from gridlstm.run.build import build_datamodule, build_module
    from gridlstm.run.console import lightning_info_silenced
    from gridlstm.run.hydra_runtime import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    from gridlstm.run.conf import find_conf_dir

    with initialize_config_dir(config_dir=str(find_conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "logger=none"])
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = build_datamodule(cfg.task)
    module = build_module(cfg, datamodule)
    batch = int(cfg.task.datamodule.batch_size)

    cuda = cfg.hardware.accelerator == "gpu"

    def now() -> float:
        if cuda:  # CUDA runs asynchronously: time the work, not its queueing
            torch.cuda.synchronize()
        return time.perf_counter()

    class Clock(Callback):
        start = 0.0

        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == warmup:
                self.start = now()

    clock = Clock()
    with lightning_info_silenced():
        trainer = L.Trainer(
            accelerator=cfg.hardware.accelerator,
            devices=1,
            precision=cfg.hardware.precision,
            max_steps=warmup + steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
            callbacks=[clock],
        )
    trainer.fit(module, datamodule=datamodule)
    seconds = now() - clock.start
    return module.num_parameters, seconds / (steps * batch) * 100_000


def _mnist_writer():
    from gridlstm.data.mnist import write_synthetic

    return write_synthetic


def _enwik8_writer():
    from gridlstm.data.enwik8 import write_synthetic

    return write_synthetic


# option -> (the writer of stand-in files into a data_dir, overrides to read them, the line said)
SYNTHETIC = {
    "synthetic_mnist": (
        _mnist_writer,
        [],
        "MNIST pixels: synthetic, random at the official sizes (the time is the shapes')",
    ),
    "synthetic_enwik8": (
        _enwik8_writer,
        ["task.datamodule.md5=null"],
        "enwik8 bytes: synthetic, random (the time is the shapes')",
    ),
}


def refuse(message: str) -> None:
    """Bad command-line input: one line, exit 2, before any import or work."""
    print(f"{PROGRAM}: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    from gridlstm.run.conf import find_conf_dir

    if find_conf_dir() is None:
        refuse("no conf/train.yaml found: run from the repository root (or set GRIDLSTM_CONF)")
    own = {"threads": 1, "steps": 60, "warmup": 10, "synthetic_mnist": 0, "synthetic_enwik8": 0}
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in own:
            low = 1 if key in ("threads", "steps") else 0
            if not value.isdigit() or int(value) < low:
                refuse(f"{arg}: {key} takes a whole number >= {low}")
            own[key] = int(value)
    written = [a.split("=", 1)[1] for a in argv if a.startswith("json=")]
    if written and (not written[-1] or not Path(written[-1]).parent.is_dir()):
        refuse(f"json={written[-1]}: give a file in an existing folder")
    argv = [a for a in argv if a.split("=", 1)[0] not in (*own, "json")]
    threads = own["threads"]
    if "--" not in argv:
        refuse("no '--' before the models: give [overrides] -- model:depth[,depth] ...")
    split = argv.index("--")
    common, models = argv[:split], argv[split + 1 :]
    for spec in models:
        if not re.fullmatch(r"[\w.]+:[1-9]\d*(,[1-9]\d*)*", spec):
            refuse(f"{spec!r} after '--' is not model:depth[,depth] (e.g. grid2d:1,2,4)")
    given = [a for a in common if a.split("=", 1)[0] == "task.datamodule.data_dir"]
    synthetic = [k for k in SYNTHETIC if own[k]]
    if len(synthetic) > 1:
        refuse(f"{synthetic[0]}=1 and {synthetic[1]}=1: give one (each times its own task)")
    if synthetic and given:  # refused before the imports: no work started
        refuse(f"{synthetic[0]}=1 writes its own data_dir; drop {given[0]}")
    import torch

    torch.set_num_threads(threads)
    stand_in: list[str] = []
    if synthetic:
        scratch = tempfile.TemporaryDirectory(prefix=f"{synthetic[0]}_")
        write, extra, said = SYNTHETIC[synthetic[0]]
        write()(scratch.name)
        # the stand-in files' place: measured with, not recorded (the temporary folder is gone)
        stand_in = [f"task.datamodule.data_dir={scratch.name}", "task.datamodule.download=false"]
        stand_in += extra
        print(said)
    stacked: dict[int, float] = {}
    rows = []
    for spec in models:
        model, depths = spec.split(":")
        for depth in (int(d) for d in depths.split(",")):
            params, seconds = measure(
                [*common, *stand_in, f"model={model}", f"model.net.num_layers={depth}"],
                own["steps"],
                own["warmup"],
            )
            rows.append((model, depth, params, seconds))
            if model == "stacked_lstm":
                stacked[depth] = seconds
            print(
                f"{model} depth {depth}: {params:,} parameters, {seconds:.1f} s / 100k", flush=True
            )
    if written:
        from gridlstm.run.provenance import device_name

        Path(written[-1]).write_text(
            json.dumps(
                {
                    "overrides": common,
                    "device": device_name(),
                    "threads": threads,
                    "steps": own["steps"],
                    "warmup": own["warmup"],
                    **{key: bool(own[key]) for key in SYNTHETIC},
                    "rows": [
                        {"model": m, "depth": d, "parameters": p, "seconds_per_100k": round(t, 1)}
                        for m, d, p, t in rows
                    ],
                },
                indent=1,
            )
            + "\n"
        )
    print(f"\n{threads} thread(s); ratios to the stacked LSTM of the same depth:")
    for model, depth, params, seconds in rows:
        ratio = f"{seconds / stacked[depth]:.2f}x" if depth in stacked else "-"
        print(f"| {model} | {depth} | {params:,} | {seconds:.1f} | {ratio} |")

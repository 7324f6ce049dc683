"""Re-score a checkpoint on the validation and test sets, without training (the procedure
behind ``python -m gridlstm.evaluate``).

The run's config comes from the checkpoint itself (``train.py`` stores it there) or, for
older checkpoints, from the run directory's ``.hydra/config.yaml``; overrides change it before
anything is built. Only the suite's own classes are built from a checkpoint: its config is
data, never code (`gridlstm.run.checkpoints`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm.nn import dispatch
from gridlstm.run import checkpoints, code, provenance, runs
from gridlstm.run.build import build_module, build_scoring_trainer, guarded
from gridlstm.run.config import check_value_types
from gridlstm.run.errors import ConfigError

SCORED = ("task", "model", "hardware")  # the config groups a re-score may override
# What a re-score reads of the stored config; the rest (callbacks, loggers, launchers, a DDP
# strategy) is never built here, so it is dropped before anything looks at it.
USED = ("task", "model", "optim", "hardware", "param_budget", "seed")
HARDWARE_USED = ("name", "accelerator", "precision")


def saved_config(path: Path, checkpoint: dict[str, Any]) -> DictConfig:
    """The training config stored in the checkpoint, else the run directory's: only the
    parts a re-score uses, resolved and checked (`gridlstm.run.checkpoints.plain_tree`)."""
    stored = checkpoint.get("gridlstm_config")
    if not isinstance(stored, dict):
        hydra_config = path.resolve().parent.parent / ".hydra" / "config.yaml"
        if not hydra_config.is_file():
            raise ConfigError(
                f"ckpt_path={path}: the checkpoint holds no config and {hydra_config} does not "
                "exist; evaluate a checkpoint inside the run directory train.py wrote"
            )
        try:
            stored = OmegaConf.to_container(OmegaConf.load(hydra_config))
        except (OmegaConfBaseException, OSError, ValueError) as error:
            raise ConfigError(f"{hydra_config}: {str(error).splitlines()[0]}") from None
        if not isinstance(stored, dict):
            raise ConfigError(f"{hydra_config}: not a config mapping")
    used = {key: stored[key] for key in USED if key in stored}
    module = (used.get("task") or {}).get("module")
    if isinstance(module, dict) and "param_budget" in module:  # 0.2's translation budget
        used["param_budget"] = module.pop("param_budget") or used.get("param_budget")
    if isinstance(used.get("hardware"), dict):
        used["hardware"] = {k: v for k, v in used["hardware"].items() if k in HARDWARE_USED}
    what = f"ckpt_path={path}: the stored config"
    return OmegaConf.create(checkpoints.plain_tree(used, checkpoints.CONFIG_TARGETS, what))


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Overrides of existing keys only (a typo is an error, not a new key)."""
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key = override.partition("=")[0]
        if key.split(".")[0] not in SCORED:
            raise ConfigError(
                f"{key}: only task.*, model.* and hardware.* options apply to a re-score"
            )
        try:
            change = OmegaConf.from_dotlist([override])
            new = OmegaConf.select(change, key)
            if isinstance(OmegaConf.select(cfg, key), DictConfig) and not isinstance(
                new, DictConfig
            ):
                raise ConfigError(
                    f"{key}: a group of options, not a value; change its keys ({key}.NAME=...)"
                )
            cfg = OmegaConf.merge(cfg, change)
        except OmegaConfBaseException as error:
            raise ConfigError(f"{key}: {str(error).splitlines()[0]}") from None
    return cfg


def stored_data(cfg: DictConfig, hparams: dict[str, Any], overrides: list[str]) -> Any:
    """The data module as the model saw it in training: built with the checkpoint's own
    tokenizers or vocabulary (never trained again), refusing overrides that would change
    what the model was trained on, and checked against what the model stored."""
    options = OmegaConf.to_container(cfg.task.datamodule, resolve=True)
    cls = checkpoints.suite_classes()["datamodule"][options["_target_"]]
    fixed = getattr(cls, "FIXED_AFTER_TRAINING", {})
    for override in overrides:
        key = override.partition("=")[0]
        name = key.removeprefix("task.datamodule.")
        if key.startswith("task.datamodule.") and name in fixed:
            raise ConfigError(
                f"{key}: cannot change after training ({fixed[name]}); options that may change: "
                "the data files, batch sizes and the task's length options"
            )
    if not hasattr(cls, "stored_options"):  # nothing learned from the data (synthetic tasks)
        return checkpoints.build(options, "datamodule")
    datamodule = checkpoints.build({**options, **cls.stored_options(hparams)}, "datamodule")
    for key, value in datamodule.module_kwargs().items():
        if key in hparams and hparams[key] != value:
            raise ConfigError(
                f"task={cfg.task.name}: the data gives {key}={str(value)[:40]!r} but the model "
                f"was trained with {str(hparams[key])[:40]!r}; re-score on data it can read"
            )
    return datamodule


def evaluate(
    ckpt: Path, out: Path, overrides: list[str], device: str | None = None
) -> dict[str, Any]:
    """Validate and test the checkpoint's weights; writes ``metrics.json`` into ``out``."""
    start = time.time()
    checkpoint = checkpoints.read(ckpt, "ckpt_path")
    cfg = apply_overrides(saved_config(ckpt, checkpoint), overrides)
    OmegaConf.update(cfg, "paths.output_dir", str(out), force_add=True)
    # The overrides are the user's own text, but they land in a tree built from the
    # checkpoint: check the result the same way before anything is built.
    cfg = OmegaConf.create(
        checkpoints.plain_tree(
            OmegaConf.to_container(cfg), checkpoints.CONFIG_TARGETS, "the config to re-score"
        )
    )
    check_value_types(cfg.model.get("net"), "model.net")
    check_value_types(cfg.task.get("datamodule"), "task.datamodule")
    # The hardware first: its mistakes cost no data loading.
    trainer = build_scoring_trainer(cfg.hardware, device)
    hparams = checkpoints.hyper_parameters(checkpoint, ckpt)
    datamodule = guarded(f"task={cfg.task.name}", lambda: stored_data(cfg, hparams, overrides))
    module = guarded(f"model={cfg.model.name}", lambda: build_module(cfg, datamodule))
    if problem := checkpoints.load_weights(module, checkpoint["state_dict"]):
        raise ConfigError(
            f"ckpt_path={ckpt}: its weights do not fit the model built from this config "
            f"({problem}); change only options that keep the model's shape"
        )
    out.mkdir(parents=True, exist_ok=True)
    running = code.running()
    with dispatch.explain(unique=True) as choices:
        val = trainer.validate(module, datamodule=datamodule, verbose=False)
        test = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {
        "status": runs.COMPLETED,
        **val[0],
        **test[0],
        runs.RESCORED: str(ckpt),
        "overrides": overrides,
        "params": module.num_parameters,
        "wall_time_s": round(time.time() - start, 2),
        "provenance": provenance.collect(
            out,
            uses_cuda=trainer.strategy.root_device.type == "cuda",
            steps=choices,
            running=running,
        ),
    }
    OmegaConf.save(cfg, out / "config.yaml")
    runs.write_metrics(out, metrics)
    return metrics

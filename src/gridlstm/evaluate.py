"""Re-score a checkpoint on the validation and test sets, without training.

    python -m gridlstm.evaluate ckpt_path=outputs/.../checkpoints/best-step4000.ckpt \\
        [task.datamodule.digits=20] [hardware.accelerator=gpu] [out=DIR]

The run's config comes from the checkpoint itself (``train.py`` stores it there) or, for
older checkpoints, from the run directory's ``.hydra/config.yaml``. ``key=value`` arguments
change it before anything is built, e.g. a longer addition or memorization task than in
training, to test generalisation. Results go to ``metrics.json`` in a directory of their own
(default ``outputs/evaluate/<date>/<time>_<id>``), with the config used (``config.yaml``).
Only the suite's own classes are built from a checkpoint: its config is data, never code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm import data, nn, runs, tasks
from gridlstm.config import ConfigError, build, defuse, resolved
from gridlstm.console import quiet_third_party
from gridlstm.launch import register_resolvers, run_id
from gridlstm.train import build_module

# Everything a checkpoint's config may name: the classes this suite exports.
ALLOWED = frozenset(
    f"{package.__name__}.{name}"
    for package in (nn, data, tasks)
    for name in package.__all__
    if isinstance(getattr(package, name), type)
)
SCORED = ("task", "model", "hardware")  # the config groups a re-score builds from


def parse(argv: list[str]) -> tuple[Path, Path | None, list[str]]:
    """(checkpoint, output directory or None, config overrides)."""
    ckpt, out, overrides = None, None, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"argument {arg!r} is not key=value; give ckpt_path=PATH, optionally out=DIR "
                "and config overrides such as task.datamodule.digits=20"
            )
        if key == "ckpt_path":
            ckpt = Path(value).expanduser()
        elif key == "out":
            out = Path(value).expanduser()
        else:
            overrides.append(arg)
    if ckpt is None:
        raise ConfigError("no checkpoint given: ckpt_path=outputs/.../checkpoints/best-....ckpt")
    return ckpt, out, overrides


def saved_config(path: Path) -> DictConfig:
    """The training config stored in the checkpoint, else the run directory's."""
    runs.check_checkpoint(path, "ckpt_path", {})
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint.get("gridlstm_config"), dict):
        return OmegaConf.create(defuse(checkpoint["gridlstm_config"]))
    hydra_config = path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not hydra_config.is_file():
        raise ConfigError(
            f"ckpt_path={path}: the checkpoint holds no config and {hydra_config} does not "
            "exist; evaluate a checkpoint inside the run directory train.py wrote"
        )
    return OmegaConf.create(defuse(OmegaConf.to_container(OmegaConf.load(hydra_config))))


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
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([override]))
        except OmegaConfBaseException as error:
            raise ConfigError(f"{key}: {str(error).splitlines()[0]}") from None
    return cfg


def check_targets(cfg: DictConfig) -> None:
    """Refuse any ``_target_`` that is not one of the suite's classes."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and target not in ALLOWED:
                raise ConfigError(
                    f"{where}._target_={target!r} is not a class of this suite; the checkpoint's "
                    "config names something else, refusing to build it"
                )
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for group in ("task", "model"):
        walk(OmegaConf.to_container(cfg[group], resolve=False), group)


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> str | None:
    """Load ``weights`` into ``module``; a short description of any mismatch, else None."""
    mine = module.state_dict()
    resized = [k for k in weights if k in mine and mine[k].shape != weights[k].shape]
    missing = [k for k in mine if k not in weights]
    unexpected = [k for k in weights if k not in mine]
    for what, keys in (("resized", resized), ("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            return f"{what}: {keys[0]}{more}"
    module.load_state_dict(weights)
    return None


def evaluate(ckpt: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Validate and test the checkpoint's weights; writes ``metrics.json`` into ``out``."""
    start = time.time()
    cfg = apply_overrides(saved_config(ckpt), overrides)
    OmegaConf.update(cfg, "paths.output_dir", str(out), force_add=True)
    check_targets(cfg)
    try:
        cfg = resolved(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the checkpoint's config: {str(error).splitlines()[0]}") from None
    datamodule = build(f"task={cfg.task.name}", lambda: instantiate(cfg.task.datamodule))
    module = build(f"model={cfg.model.name}", lambda: build_module(cfg, datamodule))
    weights = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    if problem := load_weights(module, weights):
        raise ConfigError(
            f"ckpt_path={ckpt}: its weights do not fit the model built from this config "
            f"({problem}); change only options that keep the model's shape"
        )
    hardware = OmegaConf.to_container(cfg.hardware)
    trainer = L.Trainer(
        accelerator=hardware.get("accelerator", "cpu"),
        devices=1,
        precision=hardware.get("precision", "32-true"),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    val = trainer.validate(module, datamodule=datamodule, verbose=False)
    test = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {
        "status": runs.COMPLETED,
        **val[0],
        **test[0],
        "ckpt_path": str(ckpt),
        "overrides": overrides,
        "params": module.num_parameters,
        "wall_time_s": round(time.time() - start, 2),
    }
    OmegaConf.save(cfg, out / "config.yaml")
    runs.write_metrics(out, metrics)
    return metrics


USAGE = __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.strip())
        return
    quiet_third_party()
    register_resolvers()
    try:
        ckpt, out, overrides = parse(argv)
        if not ckpt.is_file():
            raise ConfigError(f"ckpt_path={ckpt}: no such file")
        out = out or Path("outputs") / "evaluate" / run_id()
        if (out / "metrics.json").exists():
            raise ConfigError(f"out={out} already holds a metrics.json; choose another out=")
        metrics = evaluate(ckpt, out, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for key, value in metrics.items():
        if key.startswith(("val/", "test/")):
            print(f"{key:<24} {value:.4f}")
    print(f"outputs: {out}")


if __name__ == "__main__":
    main()

"""The run directory's ``.hydra/`` files, written by the suite once a run will go on.

Why not Hydra's own: Hydra writes ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml``
into the run directory before the job's first line runs, so a run that is then refused (the
directory holds a completed run, or a resume with other settings) would already have
replaced the stored config of the run it refused. ``conf/train.yaml`` turns Hydra's writing
off (``hydra.output_subdir: null``) and the training run writes the same three files, in
Hydra's format, after every check has passed (`save`).

``resume=auto`` reads the stored ``config.yaml`` back (`changed_settings`): a resume may
change how a run is carried out (steps, loggers, hardware, callbacks) but not what it
trains, so a change to the model, the task, the data, the optimiser or the seed is refused.
A key the stored config does not have is a newer option, taken as unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

SUBDIR = ".hydra"
# What a run trains: a resume that changes one of these is a different run.
FIXED = ("model", "task", "optim", "seed", "param_budget")
# What a resume may change (how the run is carried out). A FIXED value derived from one of these
# is judged as the stored run had it.
MAY_CHANGE = ("trainer", "logger", "hardware", "callbacks")


def save(cfg: DictConfig, output_dir: Path) -> None:
    """``.hydra/config.yaml`` (the job's config), ``hydra.yaml`` and ``overrides.yaml``."""
    from hydra.core.hydra_config import HydraConfig

    task_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    if "hydra" in task_cfg:  # configs composed with return_hydra_config (tests, tools)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
    folder = output_dir / SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"config.yaml": task_cfg}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        files["hydra.yaml"] = OmegaConf.create({"hydra": hydra_cfg})
        files["overrides.yaml"] = hydra_cfg.overrides.task
    for name, node in files.items():
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


def _values(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with its interpolations resolved by the suite's safe rules (`config.defuse`:
    another program's resolver stays text); as it is where they cannot be resolved."""
    from gridlstm.run.config import defuse, resolved

    try:
        return OmegaConf.to_container(resolved(OmegaConf.create(defuse(raw))), resolve=False)
    except Exception:
        return raw


def changed_settings(cfg: DictConfig, output_dir: Path) -> list[str]:
    """``key=stored (now new)`` for every setting of `FIXED` a resume would change; empty
    when the directory stores no config."""
    path = output_dir / SUBDIR / "config.yaml"
    if not path.is_file():
        return []
    try:  # a damaged or hand-edited file is a change too: never resume over it blindly
        stored = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as error:
        return [f"{path} cannot be read ({type(error).__name__})"]
    if not isinstance(stored, dict):
        return [f"{path} is not a mapping of settings"]
    # Compared as the run reads them: a key that points at another (model.net.priority:
    # ${grid2d_priority}) by the value it resolves to. The new settings are resolved beside
    # the stored run's own values of what a resume may change: a value derived from one of
    # them (the default experiment's LinearLR total_iters: ${trainer.max_steps}) is the
    # stored run's, as the scheduler state the checkpoint restores is.
    raw = OmegaConf.to_container(cfg, resolve=False)
    now = _values({**raw, **{key: stored[key] for key in MAY_CHANGE if key in stored}})
    stored = _values(stored)
    changes: list[str] = []
    for section in FIXED:
        if section in stored and section in now:
            changes += _differences(stored[section], now[section], section)
    return changes


def _differences(before: Any, after: Any, where: str) -> list[str]:
    """``key=before (now after)`` wherever the two trees differ; a key only ``after`` has
    is a newer option (unchanged). A setting turned on or off (a scheduler: null against a
    mapping) is a difference at its own key."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[str] = []
        for key in sorted(before, key=str):
            if key in after:
                changes += _differences(before[key], after[key], f"{where}.{key}")
        return changes
    return [] if before == after else [f"{where}={before} (now {after})"]


def discard_if_fresh(output_dir: Path) -> None:
    """Remove the run directory a refused run left behind, when this process made it and it
    holds nothing but Hydra's empty log: a refused run leaves no trace, and never touches a
    directory that was there before (one made earlier is older than this process)."""
    import psutil

    try:
        started = psutil.Process().create_time()
        if not output_dir.is_dir() or output_dir.stat().st_ctime < started - 1:
            return
        entries = list(output_dir.iterdir())
        if any(e.is_dir() or e.suffix != ".log" or e.stat().st_size for e in entries):
            return
        for entry in entries:
            entry.unlink()
        output_dir.rmdir()
        # outputs/<date>/ and outputs/ too, where this process made them and they are empty.
        for parent in list(output_dir.parents)[:2]:
            if (
                parent == Path.cwd()
                or parent.stat().st_ctime < started - 1
                or any(parent.iterdir())
            ):
                break
            parent.rmdir()
    except OSError:
        return

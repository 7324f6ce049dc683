"""Multiply-adds per sample for a committed job that ran before runs recorded them.

Why: a claims row's compute ratio (multiply-adds per run, A over B) read "not recorded" for
studies whose jobs ran before `TaskModule.record_macs` existed, although the count is a
function of the network and the task's size. It is counted again the way a run counts it,
on the model composed from the job's own overrides, and kept only when the overrides name
the task's size (its ``size_option``, e.g. ``task.datamodule.digits``) and the model has the
parameter count the job recorded. A preset whose defaults changed since the run builds
another network: its parameters show a changed width, but not a changed length (an
addition preset's default went from 5 digits to 3, and a job that relied on it would be
counted a third too low), so then the count stays unknown rather than wrong.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from gridlstm.analysis.job_records import overrides_list
from gridlstm.run import runs

TASK = "task.datamodule."  # where a task's size option is (its ``size_option``)


def macs_of(job: Path, defaults: dict[str, Any] | None = None) -> float | None:
    """Multiply-adds per sample of the completed job in folder ``job`` (a results folder's
    ``jobs/<name>``): as recorded, else counted again; None where neither can be had.
    ``defaults``: what the run had without naming it (a verdict cell's ``defaults:``); its
    ``task.datamodule.*`` values count where the overrides lack them (the task's size,
    stated in the declaration as a table's ``count_macs: {compose: ...}`` states it)."""
    record = runs.read_record(job)
    if record is None:
        return None
    if record.get("macs_per_sample") is not None:
        return float(record["macs_per_sample"])
    if not (job / "overrides.yaml").is_file() or record.get("params") is None:
        return None
    listed = overrides_list(job / "overrides.yaml")
    named = {o.split("=", 1)[0].lstrip("+") for o in listed}
    task = [
        f"{k}={v}" for k, v in (defaults or {}).items() if k.startswith(TASK) and k not in named
    ]
    shape = tuple(o for o in [*listed, *task] if not o.startswith("seed="))  # seeds share it
    counted = count(shape)
    if counted is None or counted[1] != int(record["params"]):
        return None
    size = f"{TASK}{counted[2]}="
    if not any(o.startswith((size, f"+{size}", f"++{size}")) for o in shape):
        return None  # the length came from a preset's default, which may have changed
    return float(counted[0])


@cache
def count(overrides: tuple[str, ...]) -> tuple[int, int, str] | None:
    """(multiply-adds per sample, parameters, the task's size option) of the model these
    overrides compose today, counted as a run counts them; None where they no longer
    compose or the task does not count multiply-adds."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from gridlstm.benchmarks.preset_shapes import compose_preset, data_for
    from gridlstm.run.build import build_module
    from gridlstm.run.conf import find_conf_dir
    from gridlstm.run.errors import ConfigError

    conf = find_conf_dir()
    if conf is None:
        return None
    try:
        cfg = compose_preset(conf, list(overrides))
        module = build_module(cfg, data_for(cfg))
    except (HydraException, OmegaConfBaseException, ConfigError, ValueError):
        return None
    module.on_fit_end()
    macs = getattr(module, "extra_metrics", {}).get("macs_per_sample")
    if macs is None:
        return None
    return int(macs), int(module.num_parameters), str(cfg.task.get("size_option"))

"""A finished job's record as the evidence reads it, in one place: a sweep job's run
directory (`read_job`: its ``metrics.json`` through `gridlstm.run.runs` and its saved config),
a study's copied jobs (`read_jobs`: the record and ``overrides.yaml``), a sweep's
``table.csv`` (`read_table_csv`), either of the last two (`rows_of`), and a job's learning
curve (`job_curve`: its CSV log, else the ``curve.csv`` a copy keeps).

Why one module: the sweep tables, the study queue, the rules that choose stages, the verdicts
and the pages' checks all read these files; each reading them its own way would let two of
them disagree about the same run.
"""

from __future__ import annotations

import bisect
import csv
import functools
import json
import statistics
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm.run import runs
from gridlstm.run.config import defuse
from gridlstm.run.errors import ConfigError

# a sweep table.csv's first columns (`gridlstm.analysis.sweep_report` writes them)
BASE_COLUMNS = ["job", "model", "layers", "hidden", "tied", "params", "task", "size"]


class TableError(ConfigError):
    """The directory holds no usable job."""


def read_config(path: Path) -> DictConfig:
    """A job's saved config, with every interpolation through an unsafe resolver escaped."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return OmegaConf.create(defuse(raw))


def read_job(job: Path) -> dict[str, Any]:
    """One row; raises ValueError naming the file that is missing or malformed."""
    metrics = runs.load_record(job)  # a RecordError (a ValueError) names the file
    config_path = job / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"{config_path}: missing")
    try:
        # The saved config keeps interpolations, some through the suite's resolvers.
        cfg = read_config(config_path)
        net, task = cfg.model.net, cfg.task
        row = {
            "job": job.name,
            "model": cfg.model.name,
            "layers": net.get("num_layers"),
            # A width solved for a parameter budget is in metrics.json, not in the config.
            "hidden": metrics.get("hidden", net.get("hidden_size")),
            "tied": net.get("tied", ""),
            "task": task.name,
            # Per-task facts live in conf/task/*.yaml (saved with every job's config).
            "size_option": task.get("size_option", "size"),
            "size": task.datamodule.get(task.get("size_option", ""), ""),
            "paper": task.get("paper"),
            "monitor": task.get("monitor", "val/acc"),
            "monitor_mode": task.get("monitor_mode", "max"),
        }
    except OmegaConfBaseException as error:
        raise ValueError(f"{config_path}: {error}") from None
    row["overrides"] = read_overrides(job / ".hydra" / "overrides.yaml")
    return {**metrics, **row}


QUEUE = "queue.json"  # a study's results: its jobs' seconds and every queue run (studies.records)


def read_queue(results: Path) -> dict[str, Any]:
    """A study's results folder's ``queue.json`` ({} where there is none yet)."""
    path = results / QUEUE
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable queue record ({error})") from None
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: not a queue record (a JSON object)")
    return found


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` through libyaml's loader where PyYAML has it (the same objects, about
    ten times faster: the pages' check reads a few hundred records and large declarations)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=8192)
def _listed(path: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    listed = load_yaml(Path(path).read_text())
    if not isinstance(listed, list):
        raise ConfigError(f"{path}: expected a list of overrides")
    return tuple(str(item) for item in listed)


def overrides_list(path: Path) -> list[str]:
    """A job's ``overrides.yaml``: the override strings Hydra wrote, in order. Read here for
    every reader, cached by file and modification time: checking the pages reads each of a
    few hundred jobs many times, which took about 10 ms a read through OmegaConf."""
    stat = path.stat()
    return list(_listed(str(path), (stat.st_mtime_ns, stat.st_size)))


def read_overrides(path: Path) -> dict[str, str]:
    """The job's command-line overrides as {key: value} (``+``/``~`` prefixes dropped)."""
    if not path.is_file():
        return {}
    try:
        listed = overrides_list(path)
    except (yaml.YAMLError, ConfigError):
        return {}
    found = {}
    for item in listed:
        key, sep, value = item.partition("=")
        if sep and not key.startswith("hydra"):
            found[key.lstrip("+~")] = value
    return found


def read_jobs(folder: Path) -> list[dict[str, Any]]:
    """Every completed job the queue copied into ``folder/jobs``: its overrides (``key: value``
    text) and its record."""
    rows = []
    for job in sorted(p for p in (folder / "jobs").iterdir() if p.is_dir()):
        record = runs.read_record(job)
        if record is None or record["status"] != runs.COMPLETED:
            continue
        listed = overrides_list(job / "overrides.yaml")
        overrides = dict(o.split("=", 1) for o in listed if "=" in o)
        rows.append({"job": job.name, **overrides, **record})
    return rows


def rows_of(folder: Path) -> list[dict[str, Any]]:
    """A records folder's completed runs: its jobs (overrides and record) where the queue
    copied them, else the rows of its table.csv (a sweep's table)."""
    if (folder / "jobs").is_dir():
        return read_jobs(folder)
    rows, _ = read_table_csv(folder / "table.csv")
    return [row for row in rows if row.get("status", "completed") in ("", "completed")]


def samples_from_step(logged: list[tuple[float, float]]):
    """Samples seen at any step, from the (step, samples) pairs the training log holds.

    Validation steps rarely coincide with logged training steps, so a step's samples go on
    from the last pair logged at or before it (the first, before any) at the batch's rate,
    the median rate between logged pairs: samples grow by the same batch every step, but a
    run resumed from a checkpoint logs its steps one later than before for the same samples
    (Lightning's logging step and the restored step differ by one), so one line through
    every pair, or the rate across a resume, is off by a few samples."""
    if not logged:
        return None
    known = sorted(dict(logged).items())  # a step logged twice: its last value
    if len(known) == 1:
        ((step, samples),) = known
        return lambda at: samples * (at + 1) / (step + 1)
    steps = [step for step, _ in known]
    rate = statistics.median((y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in pairwise(known))

    def at_step(at: float) -> float:
        step, samples = known[max(bisect.bisect_right(steps, at) - 1, 0)]
        return samples + rate * (at - step)

    return at_step


# A job's curve alone (samples seen, main validation metric): what the study queue keeps of a
# CSV log beside a job's record, a few kilobytes instead of the whole log.
CURVE = "curve.csv"


def write_curve(path: Path, points: list[tuple[float, float]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["samples", "value"])
        writer.writerows(points)


def job_curve(sweep: Path, row: dict[str, Any]) -> list[tuple[float, float]]:
    """(training samples seen, main validation metric) at each validation of a job, from its
    CSV log, else from a kept ``curve.csv`` (empty without either)."""
    log, kept = sweep / row["job"] / "csv" / "metrics.csv", sweep / row["job"] / CURVE
    if not log.is_file() and kept.is_file():
        with kept.open() as handle:
            return [(float(r["samples"]), float(r["value"])) for r in csv.DictReader(handle)]
    if not log.is_file():
        return []
    samples_at_step: list[tuple[float, float]] = []
    points = []
    with log.open() as handle:
        for record in csv.DictReader(handle):
            if record.get("train/samples_seen"):
                samples_at_step.append((float(record["step"]), float(record["train/samples_seen"])))
            if record.get(row["monitor"]):
                points.append((float(record["step"]), float(record[row["monitor"]])))
    to_samples = samples_from_step(samples_at_step)
    return [(round(to_samples(step)), value) for step, value in points] if to_samples else []


def samples_to(curve: list[tuple[float, float]], threshold: float, mode: str) -> float | None:
    """Training samples seen at the first validation where the metric reached ``threshold``
    (>= for mode max, <= for min); None if it never did."""
    for samples, metric in curve:
        if (metric >= threshold) if mode == "max" else (metric <= threshold):
            return samples
    return None


def read_table_csv(table: Path, metric: str = "") -> tuple[list[dict[str, str]], list[str]]:
    """The rows of a ``table.csv`` this command wrote, each a dict of its columns (the swept
    keys' values win over a base column of the same name, e.g. model), and its swept keys;
    with ``metric``, refused unless its header has that column."""
    if not table.is_file():
        raise TableError(f"table={table}: no such file")
    with table.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        records = list(reader)
    tail = BASE_COLUMNS[1:]
    starts = [i for i in range(len(header)) if header[i : i + len(tail)] == tail]
    if not header or header[0] != BASE_COLUMNS[0] or not starts:
        raise TableError(f"table={table}: not a table.csv of python -m gridlstm.tables")
    if metric and metric not in header:
        choices = ", ".join(c for c in header if c.startswith(("val/", "test/")))
        raise TableError(f"metric={metric}: not a column of {table}; columns: {choices}")
    # Swept keys come first, so a key that is also a base column (model) keeps its value.
    rows = [dict(reversed(list(zip(header, record, strict=True)))) for record in records]
    return rows, header[1 : starts[0]]

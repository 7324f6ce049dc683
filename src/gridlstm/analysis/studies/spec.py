"""The queue's studies: where they come from, their checks, and the jobs they expand to.

A claims study's stages are declared in its ``docs/claims/<study>/study.yaml`` (``stages:``;
`gridlstm.analysis.declared`), each read as one of the queue's studies named
``<study>_<stage>``. A machine profile (e.g. scripts/gpu_studies.yaml) lists the stages sized
for one kind of machine, ``<study>: [<stage>, ...]``, and may hold studies of its own.

A study of the queue (a plain studies file maps names to these) has:

* ``claim``: the folder under ``results`` (e.g. ``addition_depth``);
* ``overrides``: ``key=value`` strings every job gets;
* ``grid``: ``{key: [values]}``, one job per combination (in file order);
* ``cases``: optional list of ``{key: value}`` settings (e.g. each family's chosen
  configuration), each run at every grid combination: jobs go grid combination by grid
  combination, every case at the first before any at the second;
* ``rule``: instead of ``cases``, the rule that chooses them from earlier stages' records
  (`gridlstm.analysis.studies.rules`): applied by the queue once its inputs exist, and
  recorded in the stage's results folder;
* ``frontier``: optional ``{key, metric, below}``, a rule for sweeps that go up in difficulty
  (e.g. ``task.datamodule.bits``): a job is not started when the same case, at a smaller value
  of ``key``, completed with ``metric`` below ``below`` (at chance there: a harder setting is
  not run). Fixed before any result, it applies to every case alike;
* ``needs``: optional ``{override_key: description}`` of data files that must exist
  (a missing one skips the study with one line, naming the override to set);
* ``launcher``: optional ``{option: value}`` for a cluster launcher (``launcher=slurm``:
  e.g. ``partition``, ``timeout_min``, ``gpus_per_node``), over the launcher config's own;
  ignored by ``launcher=local``;
* ``dry_run``: overrides added by ``dry_run=true`` (a few steps at tiny sizes, on the CPU),
  after the grid's, so they win over it.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from omegaconf import OmegaConf
from pydantic import Field, ValidationError, model_validator

from gridlstm.analysis import confirmatory, declaration
from gridlstm.analysis.declared import CLAIMS_DIR, DECLARATION, Declared, Number, explain
from gridlstm.analysis.studies import rules
from gridlstm.run import runs as run_records
from gridlstm.run.errors import ConfigError

# A job's state where it has no run record to speak for it.
QUEUED, DONE_EARLIER, NOT_STARTED, NO_RECORD = "queued", "done earlier", "not started", "no metrics"
PAST_FRONTIER = "past the frontier"  # not run: the frontier rule
FAILED_STATES = (run_records.FAILED, NO_RECORD)


class Frontier(Declared):
    key: str
    metric: str
    below: Number


NonEmpty = Field(min_length=1)


class QueueStudy(Declared):
    """One study of the queue, as a studies file or a declaration's stage gives it (the keys
    are this module's docstring's); read for its checks, run from the mapping as given."""

    claim: Annotated[str, NonEmpty]
    overrides: tuple[str, ...] | None = None  # (an empty key in YAML: None, as none given)
    grid: dict[str, Annotated[list[Any], NonEmpty]] | None = None
    cases: Annotated[tuple[Annotated[dict[str, Any], NonEmpty], ...], NonEmpty] | None = None
    rule: dict[str, Any] | None = None
    frontier: Frontier | None = None
    needs: dict[str, str] | None = None
    launcher: dict[str, Any] | None = None  # e.g. partition: gpu, timeout_min: 240
    dry_run: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _together(self) -> QueueStudy:
        if self.rule is not None and self.cases is not None:
            raise ValueError("give cases (designed) or rule (chosen), not both")
        if self.frontier and self.frontier.key not in (self.grid or {}):
            raise ValueError(
                f"frontier key {self.frontier.key!r} is not a grid key; grid keys: "
                f"{', '.join(self.grid or {}) or 'none'}"
            )
        return self


@dataclass
class Job:
    study: str
    name: str
    overrides: list[str]
    run_dir: Path
    log: Path
    status: str = QUEUED  # a run's `Status`, or one of the queue's own states
    seconds: float = 0.0
    returncode: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    combo: dict[str, Any] = field(default_factory=dict)  # the case's and grid's values
    snapshot: Path | None = None  # the pinned code it runs (None: the checkout as it is)


def job_name(combo: dict[str, Any]) -> str:
    """A folder name from the swept values: ``model=grid2d, model.net.num_layers=4`` gives
    ``grid2d-num_layers4`` (the model by name, other keys by their last part)."""
    parts = [str(v) if k == "model" else f"{str(k).split('.')[-1]}{v}" for k, v in combo.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts)) or "job"


def load_studies(path: Path) -> dict[str, dict[str, Any]]:
    """The studies of a declaration, a machine profile or a plain studies file, checked: one
    ConfigError naming the study and key that is wrong."""
    if not path.is_file():
        raise ConfigError(f"studies={path}: no such file")
    if path.name == DECLARATION:
        raw = declared_studies(path)
        declared = set(raw)  # studies read from declarations (checked there)
    else:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"studies={path}: expected a mapping of study names to studies")
        raw, declared = profile(path, raw)
    claims: dict[str, str] = {}
    for name, study in raw.items():
        try:
            QueueStudy.model_validate(study)
        except ValidationError as error:
            raise ConfigError(f"{path}: study {name!r}: {explain(error)}") from None
        if study["claim"] in claims and name not in declared:
            raise ConfigError(
                f"{path}: studies {claims[study['claim']]!r} and {name!r} share "
                f"claim {study['claim']!r}; each study needs its own folder"
            )
        claims[study["claim"]] = name
    for name, study in raw.items():
        if study.get("rule") is not None:
            rules.check(path, name, study["rule"], set(claims))
    return raw


def profile(path: Path, raw: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """A machine profile's lines ``<study>: [<stage>, ...]`` as the declared stages they
    name (in file order, among any studies of its own), and the names that are declared."""
    found, declared = {}, set()
    # the checkout the profile is in (scripts/ beside docs/claims/), else the working directory
    root = next((d for d in path.resolve().parents if (d / CLAIMS_DIR).is_dir()), Path())
    for study, given in raw.items():
        if not isinstance(given, list):
            found[study] = given
            continue
        stages = declared_studies(root / CLAIMS_DIR / study / DECLARATION)
        for stage in given:
            if f"{study}_{stage}" not in stages:
                choices = ", ".join(n.removeprefix(f"{study}_") for n in stages)
                raise ConfigError(f"{path}: {study}: no stage {stage!r}; stages: {choices}")
            found[f"{study}_{stage}"] = stages[f"{study}_{stage}"]
            declared.add(f"{study}_{stage}")
    return found, declared


def declared_studies(path: Path) -> dict[str, dict[str, Any]]:
    """A declaration's stages as the queue's studies (its rules applied where they can be)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such declaration (docs/claims/<study>/study.yaml)")
    found = confirmatory.queue_studies(declaration.load(path))
    if not found:
        raise ConfigError(f"studies={path}: the declaration has no stage to run")
    return found


def expand(name: str, study: dict[str, Any], runs: Path, dry_run: bool) -> list[Job]:
    grid = study.get("grid") or {}
    base = [os.path.expandvars(str(o)) for o in study.get("overrides") or []]  # $DATA paths
    # The dry run's overrides come last: they win over the grid's (tiny sizes, on the CPU).
    if dry_run and not study.get("dry_run"):
        # without its tiny overrides a dry run would run every job at full size
        raise ConfigError(
            f"study {name!r} has no dry_run: overrides (a few steps at tiny sizes), so "
            "dry_run=true would run its jobs at full size; add them to the study, or leave "
            "it out with only=<other studies>"
        )
    tiny = [os.path.expandvars(str(o)) for o in study.get("dry_run") or []] if dry_run else []
    jobs = []
    for values in itertools.product(*grid.values()) if grid else [()]:
        for case in study.get("cases") or [{}]:
            combo = {**case, **dict(zip(grid.keys(), values, strict=True))}
            job = job_name(combo) if combo else name
            run_dir = runs / name / job
            overrides = base + [f"{k}={v}" for k, v in combo.items()] + tiny
            log = run_dir.parent / f"{job}.log"
            jobs.append(Job(name, job, overrides, run_dir, log, combo=combo))
    return jobs


def easier(job: Job, jobs: list[Job], key: str) -> list[Job]:
    """The same case's jobs at smaller values of the frontier ``key``."""
    case = {k: v for k, v in job.combo.items() if k != key}
    return [
        other
        for other in jobs
        if other.study == job.study
        and {k: v for k, v in other.combo.items() if k != key} == case
        and other.combo[key] < job.combo[key]
    ]


def past_frontier(job: Job, jobs: list[Job], frontier: dict[str, Any]) -> str | None:
    """Why ``job`` is past its case's frontier (a smaller value of the frontier key ended
    below the bar), or None."""
    key, metric, below = frontier["key"], frontier["metric"], float(frontier["below"])
    for other in easier(job, jobs, key):
        record = run_records.read_record(other.run_dir)
        if record is None or record.get("status") != run_records.COMPLETED:
            continue
        value = record.get(metric)
        if isinstance(value, int | float) and value < below:
            return f"{metric} {value:.3f} < {below:g} at {key}={other.combo[key]}"
    return None


def missing_data(study: dict[str, Any], overrides: list[str]) -> str | None:
    """A line naming the data a study needs and lacks, or None."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    for key, what in (study.get("needs") or {}).items():
        value = given.get(key, "")
        if not value or "$" in value or not Path(value).expanduser().exists():
            return f"needs {what} ({key}={value or '?'}: not found; set it in the environment)"
    return None


def interleave(groups: list[list[Job]]) -> list[Job]:
    """One job of each study in turn, so that every study makes progress before the deadline."""
    return [j for row in itertools.zip_longest(*groups) for j in row if j is not None]


def declared_study(study: str, only: str) -> tuple[str, str]:
    """``study=``'s declaration, and ``only=``'s stages as the queue names them
    (``<study>_<stage>``; a full name is kept)."""
    path = CLAIMS_DIR / study / DECLARATION
    if not path.is_file():
        valid = ", ".join(p.parent.name for p in sorted(CLAIMS_DIR.glob(f"*/{DECLARATION}")))
        raise ConfigError(f"study={study}: no {path}; declared studies: {valid or 'none here'}")
    stages = [s if s.startswith(f"{study}_") else f"{study}_{s}" for s in only.split(",") if s]
    if stages:  # refused here, naming stages as the declaration does
        declared = declaration.load(path)
        runnable = confirmatory.queue_studies(declared)
        waiting = confirmatory.waiting_stages(declared)
        for name in stages:
            short = name.removeprefix(f"{study}_")
            if name in waiting:
                raise ConfigError(f"only={short}: {waiting[name]}; nothing was run")
            if name not in runnable:
                names = ", ".join(n.removeprefix(f"{study}_") for n in runnable)
                raise ConfigError(f"only={short}: no such stage in {path}; stages: {names}")
    return str(path), ",".join(stages)

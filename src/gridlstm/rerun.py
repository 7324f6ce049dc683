"""Re-run a job from its record and say whether it reproduces.

    python -m gridlstm.rerun docs/claims/<study>/<stage>/cpu/jobs/<job> [code=head|<commit>]
        [steps=N] [out=multirun/rerun/<job>-<time>] [tolerance=0]

The record folder is a run directory or a study's job record (``metrics.json`` and
``overrides.yaml``). The job runs again with its own overrides, from a snapshot of the commit
its record names (``code=`` another: ``head``, or a commit for records that name none), on
this machine, and is compared with the record: its training fingerprint step by step, its
validation curve, and its final metrics exactly. One verdict line (identical / same within X /
differs from step K) and where this machine or its versions differ from the record's; the
re-run's directory holds ``rerun.json`` with the details. ``steps=N`` stops after N steps (its
learning-rate schedule unchanged) and compares what those steps made.

Exit codes: 0 identical (or within ``tolerance``), 1 it differs or the run failed, 2 bad input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from gridlstm.run import arguments, code, provenance, runs
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError
from gridlstm.run.reproduce import compare

# Overrides a record holds that say where and how the job ran, not what it computes.
DROPPED = ("hydra.run.dir", "hydra.sweep.dir", "resume", "print_config", "out")
RESULT = "rerun.json"


@dataclass
class RerunConfig:
    record: str = option("", "the job's record folder (metrics.json and its overrides)")
    code: str = option("", "the code to run: the record's commit (default), head, or a commit")
    steps: int = option(0, "stop after this many steps and compare them (0: the whole run)")
    out: str = option("", "the re-run's directory (default multirun/rerun/<job>-<time>)")
    tolerance: float = option(0.0, "final metrics within this are 'same within' (not 'differs')")


def parse(argv: list[str]) -> RerunConfig:
    """``record=`` or the folder as the first bare argument, checked (one line, exit 2)."""
    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        argv = [f"record={argv[0]}", *argv[1:]]
    cfg, _ = arguments.parse(argv, RerunConfig)
    if not cfg.record:
        raise ConfigError("no record given: python -m gridlstm.rerun <job record folder>")
    if cfg.steps < 0:
        raise ConfigError(f"steps={cfg.steps}: a number of steps (0: the whole run)")
    if cfg.tolerance < 0:
        raise ConfigError(f"tolerance={cfg.tolerance}: must be >= 0")
    return cfg


def overrides_of(folder: Path) -> list[str]:
    for path in (folder / "overrides.yaml", folder / ".hydra" / "overrides.yaml"):
        if path.is_file():
            listed = OmegaConf.to_container(OmegaConf.load(path))
            if not isinstance(listed, list):
                raise ConfigError(f"{path}: expected a list of overrides")
            return [str(o) for o in listed if str(o).split("=")[0].lstrip("+~") not in DROPPED]
    raise ConfigError(
        f"{folder}: no overrides.yaml (nor .hydra/overrides.yaml): not a job record folder"
    )


def curve_of(folder: Path) -> list[tuple[float, float]]:
    """The record's validation curve: its kept ``curve.csv``, else its CSV log."""
    from gridlstm.analysis.tables import job_curve, read_job

    try:
        return job_curve(folder.parent, read_job(folder))
    except ValueError:  # a job record folder: no .hydra/config.yaml, its curve.csv is kept
        return job_curve(folder.parent, {"job": folder.name, "monitor": ""})


def choose_commit(cfg: RerunConfig, record: dict, root: Path) -> tuple[str, str]:
    """(full commit, how it was chosen), or one ConfigError line."""
    recorded = ((record.get("provenance") or {}).get("code") or {}).get("commit")
    wanted = cfg.code or recorded
    if not wanted or wanted == code.NO_COMMIT:
        raise ConfigError(
            f"{cfg.record}: the record names no commit (written before records named their "
            "code, or outside a git checkout); give code=<commit> or code=head"
        )
    commit = code.resolve(root, "HEAD" if wanted == "head" else wanted)
    if commit is None:
        raise ConfigError(
            f"commit {wanted} is not in this clone's history (a shallow clone or an "
            "export?); fetch the history (git fetch --unshallow), or give code=head"
        )
    how = "the record's commit" if not cfg.code else f"code={cfg.code}"
    return commit, how


def run(argv: list[str]) -> None:
    cfg = parse(argv)
    folder = Path(cfg.record)
    try:
        record = runs.load_record(folder)
    except runs.RecordError as error:
        raise ConfigError(str(error)) from None
    overrides = overrides_of(folder)
    root = code.checkout_root()
    if root is None:
        raise ConfigError(
            f"the package is not imported from a git checkout ({code.PACKAGE_DIR}): a re-run "
            "checks out the record's commit; run it from a clone"
        )
    commit, how = choose_commit(cfg, record, root)
    out = Path(cfg.out or f"multirun/rerun/{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"out={out} is not empty; choose another out=")
    snapshot = code.make_snapshot(root, commit, Path("multirun/rerun/.code"))
    out.mkdir(parents=True, exist_ok=True)
    env = code.environment(snapshot)
    env["PYTHONUNBUFFERED"] = "1"
    threads = next((o.split("=", 1)[1] for o in overrides if o.startswith("hardware.threads=")), "")
    if threads.isdigit():
        env["OMP_NUM_THREADS"] = threads  # as the queue ran it
    if cfg.steps:
        from gridlstm.run.callbacks import STOP_ENV  # Lightning: imported once work starts

        env[STOP_ENV] = str(cfg.steps)
    run_dir = out / "run"
    command = [sys.executable, "-m", "gridlstm.train", *overrides, f"hydra.run.dir={run_dir}"]
    command.append("print_config=false")
    print(
        f"[rerun] {folder}: commit {commit[:12]} ({how}), "
        f"{f'the first {cfg.steps} steps' if cfg.steps else 'the whole run'}; log: {out}/rerun.log",
        flush=True,
    )
    with (out / "rerun.log").open("w") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        code_ = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    again = runs.read_record(run_dir)
    if code_ != 0 or again is None:
        print(f"[rerun] the run failed (exit {code_}); see {out}/rerun.log", flush=True)
        raise SystemExit(1)
    result = compare(record, again, curve_of(folder), curve_of(run_dir), cfg.steps or None)
    verdict = result.verdict(cfg.tolerance)
    if result.steps == result.validations == result.metrics == 0:
        verdict = (
            f"nothing compared: the record has no fingerprint and no validation in the first "
            f"{cfg.steps} steps; give more steps= (or none: the whole run)"
        )
    here = again.get("provenance") or provenance.collect()
    differs = provenance.differences(record.get("provenance") or {}, here)
    if not record.get("provenance"):
        differs = ["the record names no machine or versions (written before records did)"]
    if ((record.get("provenance") or {}).get("code") or {}).get("dirty"):
        differs.append(
            "the record ran with uncommitted changes (its provenance.diff), not in this re-run"
        )
    summary = {
        "record": str(folder),
        "commit": commit,
        "code": how,
        "steps": cfg.steps or None,
        "verdict": verdict,
        "identical": result.identical,
        "fingerprint_steps": result.steps,
        "validations": result.validations,
        "final_metrics": result.metrics,
        "first_differing_step": result.first_step,
        "first_differing_validation_samples": result.first_validation,
        "changed": {k: list(v) for k, v in result.changed.items()},
        "machine_and_versions": differs or ["the same as the record's"],
        "run": str(run_dir),
    }
    (out / RESULT).write_text(json.dumps(runs.strict(summary), indent=1) + "\n")
    print(f"[rerun] {verdict}", flush=True)
    print(f"[rerun] machine and versions: {'; '.join(summary['machine_and_versions'])}", flush=True)
    same = result.first_step is None and result.first_validation is None
    if not (same and result.largest <= cfg.tolerance) or verdict.startswith("nothing"):
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, RerunConfig, run)


if __name__ == "__main__":
    main()

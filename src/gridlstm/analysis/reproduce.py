"""Re-run a job from its record (`gridlstm.rerun`: `rerun`) and compare: the training fingerprint
step by step, the validation curve point by point, the final metrics, and where the machine or
versions differ. Exact comparison: two runs of one commit on one machine and thread count are
expected to agree to the last bit, so any difference is a finding, reported where it starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridlstm.analysis.job_records import job_curve, overrides_list, read_job
from gridlstm.analysis.reruns import RESULT
from gridlstm.run import code, provenance, runs
from gridlstm.run.errors import ConfigError

# Overrides a record holds that say where and how the job ran, not what it computes.
DROPPED = ("hydra.run.dir", "hydra.sweep.dir", "resume", "print_config", "out")

# Final values that measure the machine's speed, not the training: never compared.
TIMING = ("wall_time_s", "train/chars_per_s", "train/tokens_per_s")


@dataclass
class Comparison:
    """What matched: fingerprint steps, validation points and final metrics compared, the
    first fingerprint step that differs (None: none), the first validation (samples) that
    differs, and each differing final metric's (recorded, re-run) pair."""

    steps: int = 0
    validations: int = 0
    metrics: int = 0
    first_step: int | None = None
    first_validation: float | None = None
    largest: float = 0.0
    largest_key: str = ""
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    unmeasured: list[str] = field(default_factory=list)  # changed, not two numbers (null, text)

    @property
    def identical(self) -> bool:
        return self.first_step is None and self.first_validation is None and not self.changed

    def within(self, tolerance: float) -> bool:
        """Whether it reproduces: no step or validation differs, every final metric within
        ``tolerance`` (and none changed to or from null)."""
        same = self.first_step is None and self.first_validation is None
        return same and not self.unmeasured and self.largest <= tolerance

    def finals(self) -> str:
        found = f"largest final difference {self.largest:.3g} in {self.largest_key or '-'}"
        if self.unmeasured:
            found += f"; {', '.join(self.unmeasured)} changed to or from null"
        return found

    def verdict(self, tolerance: float = 0.0) -> str:
        """One line: identical / same within X / differs from step K."""
        compared = (
            f"{self.steps} fingerprint steps, {self.validations} validations and "
            f"{self.metrics} final metrics"
        )
        if self.identical:
            return f"identical: {compared} equal to the last bit"
        if self.first_step is not None:
            return (
                f"differs from step {self.first_step} (the first fingerprint step that differs;"
                f" {self.finals()})"
            )
        if self.first_validation is not None:
            at = f"{self.first_validation:,.0f}"
            return f"differs from the record at the validation at {at} samples ({self.finals()})"
        if self.within(tolerance):
            return f"same within {self.largest:.3g} ({self.largest_key}): {compared} compared"
        return f"differs in final metrics only: {self.finals()} ({compared} compared)"


def losses(record: dict[str, Any]) -> dict[int, float]:
    found = ((record.get("fingerprint") or {}).get("train/loss")) or {}
    return {int(k): float(v) for k, v in found.items()}


def compare(
    recorded: dict[str, Any],
    rerun: dict[str, Any],
    recorded_curve: list[tuple[float, float]],
    rerun_curve: list[tuple[float, float]],
    steps: int | None = None,
) -> Comparison:
    """Compare a re-run with its record; ``steps``: only the first ``steps`` steps (the
    fingerprint up to them and the validations both have; final metrics are not compared)."""
    result = Comparison()
    old, new = losses(recorded), losses(rerun)
    common = sorted(s for s in set(old) & set(new) if steps is None or s <= steps)
    result.steps = len(common)
    result.first_step = next((s for s in common if old[s] != new[s]), None)
    at = dict(rerun_curve)
    points = [(s, v) for s, v in recorded_curve if s in at]
    result.validations = len(points)
    result.first_validation = next((s for s, v in points if at[s] != v), None)
    if steps is not None:
        return result
    for key, value in recorded.items():
        if key in TIMING or key in ("fingerprint", "provenance") or key not in rerun:
            continue
        result.metrics += 1
        other = rerun[key]
        if other == value:
            continue
        result.changed[key] = (value, other)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, other)):
            result.unmeasured.append(key)
            continue
        gap = abs(float(value) - float(other))
        if gap > result.largest or not result.largest_key:
            result.largest, result.largest_key = gap, key
    return result


def overrides_of(folder: Path) -> list[str]:
    for path in (folder / "overrides.yaml", folder / ".hydra" / "overrides.yaml"):
        if path.is_file():
            listed = overrides_list(path)
            return [o for o in listed if o.split("=")[0].lstrip("+~") not in DROPPED]
    raise ConfigError(
        f"{folder}: no overrides.yaml (nor .hydra/overrides.yaml): not a job record folder"
    )


def curve_of(folder: Path) -> list[tuple[float, float]]:
    """The record's validation curve: its kept ``curve.csv``, else its CSV log."""

    try:
        return job_curve(folder.parent, read_job(folder))
    except ValueError:  # a job record folder: no .hydra/config.yaml, its curve.csv is kept
        return job_curve(folder.parent, {"job": folder.name, "monitor": ""})


def choose_commit(cfg: Any, record: dict, root: Path) -> tuple[str, str]:
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


def rerun(cfg: Any) -> None:
    """Re-run ``cfg.record`` (`gridlstm.rerun`'s options) and report; exit 1 if it differs."""
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
    if not report(folder, record, run_dir, out, commit, how, cfg.steps, cfg.tolerance):
        raise SystemExit(1)


def report(
    folder: Path,
    record: dict[str, Any],
    run_dir: Path,
    out: Path,
    commit: str,
    how: str,
    steps: int,
    tolerance: float,
) -> bool:
    """Compare the re-run in ``run_dir`` with the record in ``folder``, write ``rerun.json``
    into ``out`` and print the verdict; whether it reproduces."""
    again = runs.load_record(run_dir)
    result = compare(record, again, curve_of(folder), curve_of(run_dir), steps or None)
    verdict = result.verdict(tolerance)
    if result.steps == result.validations == result.metrics == 0:
        verdict = (
            f"nothing compared: the record has no fingerprint and no validation in the first "
            f"{steps} steps; give more steps= (or none: the whole run)"
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
        "steps": steps or None,
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
    return result.within(tolerance) and not verdict.startswith("nothing")

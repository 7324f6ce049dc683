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

from dataclasses import dataclass

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError


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


def run(argv: list[str]) -> None:
    from gridlstm.analysis.reproduce import rerun

    rerun(parse(argv))


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, RerunConfig, run)


if __name__ == "__main__":
    main()

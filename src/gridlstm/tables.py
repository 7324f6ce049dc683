"""Paper-shaped tables and curves from a sweep's jobs.

    python -m gridlstm.tables sweep=multirun/<date>/<time>_<id>    (or: gridlstm-tables ...)

Writes table.md, table.csv, curves.png (and, over seeds, table_seeds.csv) into the sweep
directory; what they hold: `gridlstm.analysis.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.config import ConfigError


@dataclass
class TablesConfig:
    sweep: str = option("", "a multirun directory, e.g. multirun/2026-11-21/10-00-00_ab12cd")
    thresholds: str = option(
        "", "also samples to these values of the main validation metric, e.g. 0.9,0.99"
    )


def parse(argv: list[str]) -> tuple[Path, list[float]]:
    """(the sweep directory, the extra thresholds)."""
    cfg, _ = arguments.parse(argv, TablesConfig)
    if not cfg.sweep:
        raise ConfigError("no sweep given: sweep=multirun/<date>/<time>_<id>")
    try:
        thresholds = [float(t) for t in str(cfg.thresholds).split(",") if t.strip()]
    except ValueError:
        raise ConfigError(
            f"thresholds={cfg.thresholds}: numbers separated by commas, e.g. 0.9,0.99"
        ) from None
    return Path(cfg.sweep).expanduser(), thresholds


def run(argv: list[str]) -> None:
    from gridlstm.analysis.tables import report
    from gridlstm.run.hydra_runtime import register_resolvers

    sweep, thresholds = parse(argv)
    register_resolvers()
    report(sweep, thresholds)


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, TablesConfig, run)


if __name__ == "__main__":
    main()

"""The parity frontier's table and figure from the jobs the study queue copied (a cell's runs
gather over the folders by seed: the seeds stage's seeds 2 and 3 beside the frontier's 1):

    python scripts/frontier_figure.py docs/claims/parity_sizes/frontier \
        docs/claims/parity_sizes/frontier/cpu [docs/claims/parity_sizes/seeds/cpu]

writes frontier.md, frontier.csv, frontier.png and verdicts.md (the families' test accuracy
at each budget and k that two or more ran, by the claims' rule) into the first folder, and
prints the seeds stage's ``cases`` and the fill stage's (each seed still missing at a
frontier or the k after it, over all the folders: the rule in `gridlstm.analysis.frontier`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gridlstm.analysis.frontier import (
    frontiers,
    missing_seeds,
    seed_cases,
    verdicts_markdown,
    write,
)

STUDIES = Path(__file__).with_name("cpu_studies.yaml")


def bits_grid() -> list[int]:
    """The frontier sweep's k (the setting after a frontier where the sweep stopped below it)."""
    studies = yaml.safe_load(STUDIES.read_text())
    return studies["parity_sizes_frontier"]["grid"]["task.datamodule.bits"]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not all((Path(a) / "jobs").is_dir() for a in argv[1:]):
        raise SystemExit(__doc__)
    found = frontiers([Path(a) for a in argv[1:]])
    for row in found:
        print(row)
    for path in write(found, Path(argv[0]), argv[1:]):
        print(f"wrote {path}")
    verdicts = Path(argv[0]) / "verdicts.md"
    verdicts.write_text(verdicts_markdown([Path(a) for a in argv[1:]], argv[1:]))
    print(f"wrote {verdicts}")
    print("\n# the seeds stage's cases (scripts/cpu_studies.yaml):")
    print(yaml.safe_dump({"cases": seed_cases(found)}, sort_keys=False), end="")
    fill = missing_seeds([Path(a) for a in argv[1:]], bits_grid())
    print("\n# the fill stage's cases (each with its missing seed; none: every frontier is done):")
    print(yaml.safe_dump({"cases": fill}, sort_keys=False), end="")


if __name__ == "__main__":
    main(sys.argv[1:])

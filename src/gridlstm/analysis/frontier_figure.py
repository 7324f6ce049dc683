"""The parity frontier's table and figure from the jobs the study queue copied (a cell's runs
gather over the folders by seed: the seeds stage's seeds 2 and 3 beside the frontier's 1):

    python -m gridlstm.analysis.frontier_figure docs/claims/parity_sizes/frontier \
        docs/claims/parity_sizes/frontier/cpu [docs/claims/parity_sizes/seeds/cpu]

writes frontier.md, frontier.csv, frontier.png and verdicts.md (the families' test accuracy
at each budget and k that two or more ran, by the claims' rule) into the first folder, and
prints the seeds stage's ``cases`` and the fill stage's (each seed still missing at a
frontier or the k after it, over all the folders: the rule in `gridlstm.analysis.frontier`).

With the learning-rate check's folders after ``--checked``:

    python -m gridlstm.analysis.frontier_figure docs/claims/parity_sizes/frontier <chosen folders> \
        --checked docs/claims/parity_sizes/lr/cpu docs/claims/parity_sizes/lr_seeds/cpu ...

it writes best_rate.md, .csv, .png and best_rate_verdicts.md instead: each family and budget
at the learning rate that solves the largest k (`gridlstm.analysis.lr_check`), and prints the
next stage of the check (the seeds still missing in each solving rate).

For another task's frontier, ``--by SIZE,KEY`` names the columns a cell holds fixed besides the
family (e.g. addition across lengths, one budget: ``--by experiment,task.datamodule.digits``);
it prints each family's frontier and writes verdicts.md only (the figure and the stages'
cases are parity's):

    python -m gridlstm.analysis.frontier_figure docs/claims/addition_lengths/frontier \
        docs/claims/addition_lengths/frontier/cpu docs/claims/addition_lengths/decide/cpu \
        --by experiment,task.datamodule.digits

``--by`` with ``--checked`` writes best_rate.md and best_rate_verdicts.md (no figure) and
prints the check's next stage over the settings the chosen runs covered:

    python -m gridlstm.analysis.frontier_figure docs/claims/paper_regime/frontier \
        docs/claims/paper_regime/frontier/cpu --checked docs/claims/paper_regime/lr/cpu \
        docs/claims/paper_regime/lr_seeds/cpu --by experiment,task.datamodule.digits

A deciding stage's folders after ``--more`` (further seeds run at each family's best rate once
the check fixed it) also write best_rate_seeds_verdicts.md: the cells with those seeds joined at
each family's rate, every pair of families compared (the rates stay the check's):

    python -m gridlstm.analysis.frontier_figure docs/claims/paper_regime/frontier \
        docs/claims/paper_regime/frontier/cpu --checked docs/claims/paper_regime/lr/cpu \
        docs/claims/paper_regime/lr_seeds/cpu --more docs/claims/paper_regime/decide/cpu \
        --by experiment,task.datamodule.digits
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from gridlstm.analysis.evidence import CLAIMS_DIR, DECLARATION
from gridlstm.analysis.frontier import (
    AS_RAN,
    cells_verdicts,
    frontiers,
    markdown,
    missing_seeds,
    seed_cases,
    verdicts_markdown,
    write,
)
from gridlstm.analysis.job_records import read_jobs
from gridlstm.analysis.lr_check import (
    best_rate_cells,
    best_rate_frontiers,
    best_rate_intro,
    learning_rate_frontier_cases,
)
from gridlstm.analysis.stages import number

SEEDS_VERDICTS = "best_rate_seeds_verdicts.md"

BITS = "task.datamodule.bits"  # the setting parity's frontier runs over


def bits_grid() -> list[int]:
    """The frontier sweep's k (the setting after a frontier where the sweep stopped below it)."""
    declared = CLAIMS_DIR / "parity_sizes" / DECLARATION
    if not declared.is_file():
        raise SystemExit(f"the parity frontier's grid is in {declared}: run from a checkout")
    stages = yaml.safe_load(declared.read_text())["stages"]
    return next(s for s in stages if s["name"] == "frontier")["grid"][BITS]


def settings_in(folders: list[Path], key: str) -> list[int]:
    """The settings the folders' completed jobs ran (the sweep's grid, for another task)."""
    return sorted({int(v) for f in folders for r in read_jobs(f) if (v := number(r.get(key)))})


def best_rate(
    out: Path,
    chosen: list[str],
    checked: list[str],
    by: tuple[str, str] | None = None,
    more: list[str] | None = None,
) -> None:
    """The frontier at each family and size's best learning rate, its verdicts, and the
    check's next stage. ``by`` (size, setting columns) for another task than parity: then the
    table and the verdicts only (the figure is parity's), the grid the chosen runs covered.
    ``more``: a deciding stage's folders (further seeds at each best rate), whose verdicts go
    to best_rate_seeds_verdicts.md with every pair of families compared."""
    size, key = by or ("param_budget", BITS)
    options = dict(size=size, key=key)
    chosen_paths, checked_paths = [Path(a) for a in chosen], [Path(a) for a in checked]
    found = best_rate_frontiers(chosen_paths, checked_paths, **options, metric=AS_RAN)
    for row, rate in found:
        print(row.family, row.size, row.largest_solved, "chosen" if rate is None else rate)
    intro = best_rate_intro(chosen, checked)
    if by is None:
        for path in write([r for r, _ in found], out, name="best_rate", intro=intro):
            print(f"wrote {path}")
        grid = bits_grid()
    else:
        page = out / "best_rate.md"
        page.write_text(markdown([r for r, _ in found], [], key.split(".")[-1], intro))
        print(f"wrote {page}")
        grid = settings_in(chosen_paths, key)
    runs = best_rate_cells(chosen_paths, checked_paths, found, **options)
    verdicts = out / "best_rate_verdicts.md"
    verdicts.write_text(cells_verdicts(runs, intro, size=size, key=key, pairs=True))
    print(f"wrote {verdicts}")
    if more:
        more_paths = [Path(a) for a in more]
        runs = best_rate_cells(chosen_paths, checked_paths, found, more=more_paths, **options)
        head = best_rate_intro(chosen, checked, more)
        verdicts = out / SEEDS_VERDICTS
        verdicts.write_text(cells_verdicts(runs, head, size=size, key=key, pairs=True))
        print(f"wrote {verdicts}")
    named = learning_rate_frontier_cases(checked_paths, grid, **options, metric=AS_RAN)
    print("\n# the check's next stage (each seed still missing in a solving rate; none: done):")
    print(yaml.safe_dump({"cases": named}, sort_keys=False), end="")


def split_by(by: str) -> tuple[str, str]:
    """``--by SIZE,KEY`` as its two columns."""
    size, _, key = by.partition(",")
    if not size or not key or "," in key:
        raise argparse.ArgumentTypeError(
            f"{by}: give two columns, SIZE,KEY (e.g. experiment,task.datamodule.digits)"
        )
    return size, key


def by_columns(out: Path, folders: list[str], by: tuple[str, str]) -> None:
    """Frontier and verdicts with cells by family x ``by``'s two columns (size, setting)."""
    size, key = by
    for row in frontiers([Path(a) for a in folders], size=size, key=key, metric=AS_RAN):
        print(row.family, row.size, "largest solved:", row.largest_solved, "after:", row.after)
    verdicts = out / "verdicts.md"
    verdicts.write_text(verdicts_markdown([Path(a) for a in folders], folders, size=size, key=key))
    print(f"wrote {verdicts}")


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gridlstm.analysis.frontier_figure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="the folder the tables are written to")
    parser.add_argument("folders", nargs="+", help="the frontier's (chosen) job folders")
    parser.add_argument("--checked", nargs="+", help="the learning-rate check's job folders")
    parser.add_argument(
        "--more", nargs="+", help="a deciding stage's folders: further seeds at each best rate"
    )
    parser.add_argument(
        "--by", type=split_by, help="SIZE,KEY: the columns a cell holds fixed (not parity)"
    )
    args = parser.parse_args(argv)
    named = args.folders + (args.checked or []) + (args.more or [])
    if missing := [a for a in named if not (Path(a) / "jobs").is_dir()]:
        parser.error(f"no jobs/ folder in {', '.join(missing)} (give the study's copied folders)")
    if args.more and not args.checked:
        parser.error("--more needs --checked (further seeds join each family's best rate)")
    return args


def main(argv: list[str]) -> None:
    args = arguments(argv)
    if args.checked:
        return best_rate(args.out, args.folders, args.checked, args.by, args.more)
    if args.by:
        return by_columns(args.out, args.folders, args.by)
    found = frontiers([Path(a) for a in args.folders], key=BITS, metric=AS_RAN)
    for row in found:
        print(row)
    for path in write(found, args.out, args.folders):
        print(f"wrote {path}")
    folders = [Path(a) for a in args.folders]
    verdicts = args.out / "verdicts.md"
    verdicts.write_text(verdicts_markdown(folders, args.folders, key=BITS))
    print(f"wrote {verdicts}")
    print("\n# the seeds stage's cases (docs/claims/parity_sizes/study.yaml):")
    print(yaml.safe_dump({"cases": seed_cases(found, key=BITS)}, sort_keys=False), end="")
    fill = missing_seeds(folders, bits_grid(), key=BITS, metric=AS_RAN)
    print("\n# the fill stage's cases (each with its missing seed; none: every frontier is done):")
    print(yaml.safe_dump({"cases": fill}, sort_keys=False), end="")


if __name__ == "__main__":
    main(sys.argv[1:])

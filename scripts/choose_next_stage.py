"""Each family's configuration for a study's next stage, by the rule fixed before its search
(`gridlstm.analysis.stages.FASTEST_THEN_BEST`), from the jobs the study queue copied; it
prints the choices and the next stage's ``cases`` for the studies file, the edge rule's
cases where a chosen rate sits at the end of the rates searched (`stages.edge_cases`; the
searches that state that rule run them first), and writes the choices to
``<folder>/choices.md`` (the page's table):

    python scripts/choose_next_stage.py docs/claims/parity_sizes/cpu model param_budget
    python scripts/choose_next_stage.py docs/claims/addition_lengths/cpu model
    python scripts/choose_next_stage.py \
        docs/claims/paper_regime/cpu,docs/claims/paper_regime/edge/cpu model

Several folders (comma-separated): their jobs are ranked together (a search and its edge
jobs); ``choices.md`` goes to the first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gridlstm.analysis.stages import as_cases, choices_markdown, choose, edge_cases, read_jobs


def main(argv: list[str]) -> None:
    folders = [Path(f) for f in argv[0].split(",")] if argv else []
    if len(argv) < 2 or not all((f / "jobs").is_dir() for f in folders):
        raise SystemExit(__doc__)
    folder, groups = folders[0], argv[1:]
    rows = [row for f in folders for row in read_jobs(f)]
    print(f"{len(rows)} completed jobs in {', '.join(str(f) for f in folders)}")
    chosen = choose(rows, groups)
    for group, row in sorted(chosen.items()):
        print(
            ", ".join(f"{g}={v}" for g, v in zip(groups, group, strict=True)),
            f"-> model.net.num_layers={row.get('model.net.num_layers')}",
            f"optim.optimizer.lr={row.get('optim.optimizer.lr')}",
            f"(samples to 0.99: {row.get('val/samples_to_threshold')},",
            f"val/acc {row.get('val/acc')}; job {row['job']})",
        )
    (folder / "choices.md").write_text(choices_markdown(rows, groups))
    print(f"wrote {folder / 'choices.md'}")
    print("\n# the next stage's cases (scripts/cpu_studies.yaml):")
    print(yaml.safe_dump({"cases": as_cases(chosen, groups)}, sort_keys=False), end="")
    edges = edge_cases(rows, chosen, groups)
    if edges:
        print("\n# first, where a search's edge rule applies: its chosen rate at the grid's end,")
        print("# the rate beyond it (seed 1, the search's settings):")
        print(yaml.safe_dump({"cases": edges}, sort_keys=False), end="")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Stage 2 of the deep tied investigation (docs/claims/deep_tied): the tied 2-LSTM's test
exact-match by depth and priority, over the seeds both stages ran, with the claims' verdict
rule at each depth (Welch's t-test, `gridlstm.analysis.verdicts`):

    python scripts/deep_tied_verdicts.py docs/claims/deep_tied

reads stage 1's runs (suspects/cpu: its seed-1 runs that change nothing but the priority)
and stage 2's (priority/cpu), and writes priority_verdicts.md and priority_by_depth.csv into
the folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gridlstm.analysis.stages import read_jobs
from gridlstm.analysis.verdicts import cells, report

KEYS = ("model.net.num_layers", "model.net.priority")
# Stage 1's suspects that change something besides the priority: not this comparison's.
OTHER_CHANGES = ("model.net.forget_bias", "trainer.gradient_clip_val", "task.module.embedding_std")


def rows(folder: Path) -> list[dict]:
    found = []
    for stage in ("suspects", "priority"):
        for row in read_jobs(folder / stage / "cpu"):
            if row.get("model") != "grid2d" or any(key in row for key in OTHER_CHANGES):
                continue
            found.append({**row, "model.net.priority": row.get("model.net.priority", "depth")})
    return found


def render(folder: Path) -> tuple[str, str]:
    """(priority_verdicts.md, priority_by_depth.csv) from the jobs under ``folder``."""
    found = rows(folder)
    found.sort(key=lambda r: (int(r["model.net.num_layers"]), r["model.net.priority"]))
    lines = ["cell,n,mean,std,values"]
    for cell in cells(found, list(KEYS), "test/acc"):
        values = " ".join(f"{v:.3f}" for v in cell.values)
        lines.append(f'"{cell.name}",{cell.n},{cell.mean:.4f},{cell.std:.4f},{values}')
    text = report(found, list(KEYS), "test/acc", "max", within=["model.net.num_layers"])
    head = "# Tied 2-LSTM, test exact-match by depth and priority (stages 1 and 2)\n\n"
    return head + text, "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("docs/claims/deep_tied")
    md, table = render(folder)
    (folder / "priority_verdicts.md").write_text(md)
    (folder / "priority_by_depth.csv").write_text(table)
    print(f"wrote {folder / 'priority_verdicts.md'} and .csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

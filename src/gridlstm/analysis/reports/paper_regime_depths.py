"""Stages 5 and 6 of the paper's regime (docs/claims/paper_regime): would another depth change
stage 4's verdict? Every family at every depth it ran at 5 digits, each at its best rate, over
the seeds run there, and the verdict restated between each family's best depth (by mean over
its seeds) by the claims' rule (Welch's t-test, `gridlstm.analysis.verdicts`):

    python -m gridlstm.tables report=paper_regime_depths

writes depths_verdicts.md into the folder. A family's stage-4 depth is its best-rate cell
(`gridlstm.analysis.lr_check.best_rate_cells`: seeds 1-3 of the frontier and the rate check,
4-6 of stage 4); the other depths are stage 5's seed 1 (depths/cpu) and stage 6's seeds 2-6
(depths_seeds/cpu). Stage 5 ran each family at its best rate, so the cells share it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from gridlstm.analysis.frontier import AS_RAN, cells
from gridlstm.analysis.lr_check import LR_KEY, best_rate_cells, best_rate_frontiers
from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.verdicts import report

DIGITS = 5
BY = dict(size="experiment", key="task.datamodule.digits")
DEPTH = "model.net.num_layers"


def depth_cells(folder: Path) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(family, depth): the completed runs at 5 digits, one per seed."""
    chosen = [folder / "frontier" / "cpu"]
    checked = [folder / "lr" / "cpu", folder / "lr_seeds" / "cpu"]
    found = best_rate_frontiers(chosen, checked, **BY, metric=AS_RAN)
    more = [folder / "decide" / "cpu"]
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (family, _, digits), runs in best_rate_cells(
        chosen, checked, found, more=more, **BY
    ).items():
        if digits == DIGITS:
            (depth,) = {int(r[DEPTH]) for r in runs}
            out[(family, depth)] = runs
    stages = [folder / stage / "cpu" for stage in ("depths", "depths_seeds")]
    stages = [stage for stage in stages if (stage / "jobs").is_dir()]  # stage 6 may not have run
    for (family, depth, digits), runs in cells(stages, "model", DEPTH, BY["key"]).items():
        if digits == DIGITS:
            if (family, int(depth)) in out:
                raise ValueError(f"{family} at depth {depth} ran in stage 4 and in stages 5-6")
            out[(family, int(depth))] = runs
    return out


def render(folder: Path) -> str:
    """depths_verdicts.md: every cell, each family's best depth, and the verdicts."""
    found = depth_cells(folder)
    means = {
        cell: statistics.mean(float(r["test/acc"]) for r in runs) for cell, runs in found.items()
    }
    # a family's best depth: the best mean among its depths with all its seeds (1-6), so
    # that a depth stage 5's rule stopped at seed 1, or stage 6 has not finished, is not chosen
    # on fewer seeds than the others
    most = {f: max(len(runs) for (g, _), runs in found.items() if g == f) for f, _ in found}
    best = {}
    for (family, depth), mean in sorted(means.items()):
        if len(found[(family, depth)]) < most[family]:
            continue
        if family not in best or mean > means[(family, best[family])]:
            best[family] = depth
    rows = []
    for (family, depth), runs in sorted(found.items()):
        values = [float(r["test/acc"]) for r in runs]
        spread = f" +- {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        (params,) = {int(r["params"]) for r in runs}
        (rate,) = {float(r[LR_KEY]) for r in runs}
        by_seed = sorted(runs, key=lambda r: int(r.get("seed", 0) or 0))
        rows.append(
            [
                family,
                depth,
                f"{rate:g}",
                f"{params:,}",
                len(values),
                ", ".join(f"{float(r['test/acc']):.3f}" for r in by_seed),
                f"{means[(family, depth)]:.4f}{spread}",
                "best" if best[family] == depth else "",
            ]
        )
    head = ["family", "depth", "rate", "parameters", "seeds", "test exact-match by seed"]
    head += ["mean +- std", "the family's best depth"]
    lines = [
        f"# The paper's regime at {DIGITS} digits: every depth run (stages 4-6)",
        "",
        "Each family at its best rate; a cell's runs gather over the stages by seed. Stage 4's",
        "depth has seeds 1-6; another depth has stage 5's seed 1 and stage 6's seeds 2-6 where",
        "stage 5's rule sent it on (its seed 1 above the family's stage-4 depth's seed 1).",
        "A family's best depth: the best mean among its depths run over all its seeds.",
        "",
        *pipe_table(head, rows),
        "",
        "## Each family's best depth against the others'",
        "",
    ]
    chosen = [r for (family, depth), runs in found.items() if best[family] == depth for r in runs]
    text = "\n".join(lines) + "\n" + report(chosen, ["model", DEPTH], "test/acc", "max", pairs=True)
    by_family = []
    for family in sorted(best):
        own = [r for (f, _), runs in found.items() if f == family for r in runs]
        if len({r[DEPTH] for r in own}) > 1:
            by_family.append(
                f"## {family}: its depths\n\n" + report(own, [DEPTH], "test/acc", "max")
            )
    return text + "\n" + "\n".join(by_family)


def outputs(claims: Path) -> dict[Path, str]:
    """``paper_regime/depths_verdicts.md``."""
    folder = claims / "paper_regime"
    if not (folder / "depths" / "cpu").is_dir() or not (folder / "frontier" / "cpu").is_dir():
        return {}
    return {folder / "depths_verdicts.md": render(folder)}

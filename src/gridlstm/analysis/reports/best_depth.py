"""Would another depth change a verdict between families, each chosen at its best learning
rate? Every family at every depth it ran at one task size, each at its best rate, over the
seeds run there, and the verdict restated between each family's best depth (by mean over its
seeds) by the claims' rule (Welch's t-test, `gridlstm.analysis.verdicts`). Declared as a
report (kind ``best_depth``): ``size`` (the task-size key and the value compared at),
``chosen``, ``checked`` and ``more`` (the stages whose runs give each family's best-rate cell:
`gridlstm.analysis.lr_check.best_rate_cells`), ``depths`` (the stages that ran the other
depths, at each family's best rate), ``title``, ``intro`` (a string, or a list of lines) and
``file``. Depth is ``model.net.num_layers``; the cells compare test exact-match.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from gridlstm.analysis.declared import Study
from gridlstm.analysis.frontier import AS_RAN, Ladder, cells
from gridlstm.analysis.lr_check import LR_KEY, best_rate_cells, best_rate_frontiers
from gridlstm.analysis.markdown import pipe_table
from gridlstm.analysis.verdicts import report

DEPTH = "model.net.num_layers"
REQUIRED = {"file", "size", "chosen", "checked", "more", "depths", "title", "intro"}
OPTIONAL: set[str] = set()


def depth_cells(folder: Path, entry: dict[str, Any]) -> dict[tuple[str, int], list[dict]]:
    """(family, depth): the completed runs at the compared size, one per seed."""
    (key, size) = next(iter(entry["size"].items()))
    ladder = Ladder(key, size="experiment", metric=AS_RAN)
    chosen, checked = [folder / f for f in entry["chosen"]], [folder / f for f in entry["checked"]]
    found = best_rate_frontiers(chosen, checked, ladder)
    more = [folder / f for f in entry["more"]]
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (family, _, at), runs in best_rate_cells(chosen, checked, found, ladder, more).items():
        if at == size:
            (depth,) = {int(r[DEPTH]) for r in runs}
            out[(family, depth)] = runs
    stages = [folder / f for f in entry["depths"]]
    stages = [stage for stage in stages if (stage / "jobs").is_dir()]  # a stage yet to run
    for (family, depth, at), runs in cells(stages, Ladder(key, size=DEPTH)).items():
        if at == size:
            if (family, int(depth)) in out:
                raise ValueError(f"{family} at depth {depth} ran in two stages: {folder}")
            out[(family, int(depth))] = runs
    return out


def render(folder: Path, entry: dict[str, Any]) -> str:
    """Every cell, each family's best depth, and the verdicts."""
    found = depth_cells(folder, entry)
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
        f"# {entry['title']}",
        "",
        *([entry["intro"]] if isinstance(entry["intro"], str) else entry["intro"]),
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


def outputs(study: Study, entry: dict[str, Any]) -> dict[Path, str]:
    """The report's file."""
    return {study.folder / entry["file"]: render(study.folder, entry)}

"""Per-layer figures from the depth probe's ``probe.csv`` files (``callbacks=depth_probe``).

Why: whether a deep tied grid passes signal and gradient along depth is a curve over layers;
one figure puts several runs side by side (e.g. two priorities at one depth), each at its
first and its last probed step.

    python -m gridlstm.analysis.probe_figure out=docs/claims/deep_tied/probe.png \
        docs/claims/deep_tied/suspects/cpu/jobs/grid2d-num_layers8 ...
"""

from __future__ import annotations

import csv
from pathlib import Path

STATS = ("depth_h_norm", "depth_grad_norm", "depth_forget_gate", "depth_input_gate")


class ProbeError(ValueError):
    """A probe file that is missing or not in the probe's format."""


def read_probe(path: Path) -> dict[int, dict[str, list[float]]]:
    """{step: {stat: per-layer values}} from one ``probe.csv`` (or a folder holding one)."""
    path = path / "probe.csv" if path.is_dir() else path
    if not path.is_file():
        raise ProbeError(f"{path}: no probe.csv (run with callbacks=depth_probe)")
    steps: dict[int, dict[str, dict[int, float]]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["step", "stat", "layer", "value"]:
            raise ProbeError(f"{path}: columns {reader.fieldnames}, expected step,stat,layer,value")
        for row in reader:
            cell = steps.setdefault(int(row["step"]), {}).setdefault(row["stat"], {})
            cell[int(row["layer"])] = float(row["value"])
    if not steps:
        raise ProbeError(f"{path}: no rows")
    return {
        step: {stat: [values[k] for k in sorted(values)] for stat, values in stats.items()}
        for step, stats in steps.items()
    }


def plot(runs: dict[str, Path], out: Path, stats: tuple[str, ...] = STATS) -> None:
    """One panel per statistic, value against layer; each run at its first probed step
    (dashed) and its last (solid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = {label: read_probe(path) for label, path in runs.items()}
    fig, axes = plt.subplots(1, len(stats), figsize=(4 * len(stats), 3.4))
    for ax, stat in zip(axes, stats, strict=True):
        for index, (label, probe) in enumerate(probes.items()):
            color = f"C{index}"
            first, last = min(probe), max(probe)
            for step, style in ((first, "--"), (last, "-")):
                values = probe[step].get(stat)
                if values:
                    layers = range(1, len(values) + 1)
                    name = f"{label} (step {step})" if ax is axes[0] else None
                    ax.plot(layers, values, style, color=color, label=name)
        ax.set_title(stat)
        ax.set_xlabel("layer")
        if stat.endswith("grad_norm"):
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


USAGE = "usage: python -m gridlstm.analysis.probe_figure out=FIGURE.png RUN_DIR [RUN_DIR ...]"


def main(argv: list[str]) -> int:
    """``out=FIGURE.png RUN_DIR [RUN_DIR ...]``: each run labelled by its folder name."""
    import sys

    outs = [a.split("=", 1)[1] for a in argv if a.startswith("out=")]
    runs = [Path(a) for a in argv if not a.startswith("out=")]
    if len(outs) != 1 or not runs:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        plot({run.name: run for run in runs}, Path(outs[0]))
    except ProbeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {outs[0]}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))

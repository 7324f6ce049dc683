"""A sweep's learning curves as one figure: against samples and, where every curve's job
recorded its multiply-adds a sample, against multiply-adds beside it.

Why the second panel: families compared at equal samples do unequal work (a tied grid at
depth 4 does about four times a depth-2 stacked LSTM's multiply-adds a sample), so a curve
that leads per sample may trail per multiply-add. Both x-axes in one figure, with the same
y-axis, let a reader see which budget a comparison is fair in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Curve = list[tuple[float, float]]  # (training samples seen, validation metric)
VERSION = 2  # of the drawing below: raise it when a change should redraw committed figures
FINGERPRINT = "gridlstm-fingerprint"  # the PNG text key that holds `fingerprint`


@dataclass
class Series:
    """One line of the figure: a job's curve, or a cell's seeds (their mean, and each seed's
    own curve drawn thin: runs that leave a plateau at different times make a bimodal spread,
    which a mean +- std band would draw outside the metric's range)."""

    label: str
    members: list[Curve]
    macs_per_sample: float | None = None  # None: not recorded by some job of the series


def mean_curve(members: list[Curve]) -> tuple[list[float], np.ndarray]:
    """The members' mean at every x some member validated at, once every member has started.
    A member that stopped earlier keeps its last value: a job stops early only once solved,
    and dropping it would end (or bias) the cell's curve at its best seed."""
    xs = sorted({x for curve in members for x, _ in curve})
    xs = [x for x in xs if all(curve and curve[0][0] <= x for curve in members)]
    at = [[next(y for cx, y in reversed(curve) if cx <= x) for curve in members] for x in xs]
    return xs, np.array([np.mean(ys) for ys in at])


def fingerprint(series: list[Series], ylabel: str, title: str, cap: float | None = None) -> str:
    """What a drawn figure shows, as a short hash (with the drawing code's `VERSION`): kept in
    the PNG, so a figure of unchanged data is not redrawn (another matplotlib draws other
    bytes, and a publishing command must leave git clean)."""
    shown = [(s.label, s.members, s.macs_per_sample) for s in series]
    marked = [cap] if cap is not None else []  # a figure without a cap hashes as before
    text = json.dumps([VERSION, ylabel, title, shown, *marked], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def drawn_fingerprint(path: Path) -> str | None:
    """The fingerprint a figure file was drawn with (None: not one of ours, or no file)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.text.get(FINGERPRINT)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return None


def draw(
    series: list[Series],
    out: Path,
    ylabel: str,
    title: str,
    banded: bool,
    fingerprint: str | None = None,
    cap: float | None = None,
) -> tuple[int, int]:
    """Write the figure to ``out``; returns (curves drawn, panels: 1 or 2). ``banded``: each
    series is a cell of seeds (its mean, each seed thin beside it), else one job (its first
    member).
    ``fingerprint`` is kept in the PNG (`drawn_fingerprint`); no software or date is. ``cap``:
    the runs' budget in samples, a dashed line (per series on the multiply-adds panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in series if s.members and (not banded or mean_curve(s.members)[0])]
    per_mac = bool(shown) and all(s.macs_per_sample for s in shown)
    panels = 2 if per_mac else 1
    columns = 1 if len(shown) <= 6 else 2
    legend = (0.22 * -(-len(shown) // columns) + 0.25) if shown else 0.0  # inches, below
    height = 4.5 + legend
    figure, axes = plt.subplots(
        1, panels, figsize=(6.5 * panels, height), sharey=True, squeeze=False
    )
    for s in shown:
        if banded:
            xs, mean = mean_curve(s.members)
            label, seeds = f"{s.label} (n={len(s.members)})", s.members
        else:
            xs, ys = zip(*s.members[0], strict=True)
            mean, label, seeds = np.array(ys), s.label, []
        for panel, scale in zip(axes[0], [1.0, s.macs_per_sample or 1.0], strict=False):
            x = np.array(xs, dtype=float) * scale
            (line,) = panel.plot(x, mean, marker=".", label=label)
            for seed in seeds:
                sx, sy = zip(*seed, strict=True)
                thin = {"linewidth": 0.7, "alpha": 0.35, "color": line.get_color()}
                panel.plot(np.array(sx, dtype=float) * scale, sy, **thin)
            if cap is not None:
                panel.axvline(cap * scale, linestyle="--", linewidth=1, color=line.get_color())
    axes[0][0].set_xlabel("training samples seen" + (" (dashed: the cap)" if cap else ""))
    axes[0][0].set_ylabel(ylabel)
    if per_mac:
        axes[0][1].set_xlabel("multiply-adds (samples x multiply-adds a sample)")
    figure.suptitle(title)
    if shown:  # below the panels, so long labels are not cut off
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=columns, fontsize="small")
    figure.tight_layout(rect=(0, legend / height, 1, 1))
    metadata = {"Software": None, FINGERPRINT: fingerprint} if fingerprint else {"Software": None}
    figure.savefig(out, dpi=120, metadata=metadata)
    plt.close(figure)
    return len(shown), panels

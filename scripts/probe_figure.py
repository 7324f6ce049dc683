"""Per-layer figure of the depth probe (``callbacks=depth_probe``) for several runs:

    python scripts/probe_figure.py out=FIGURE.png RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds a probe.csv (a run directory, or a job folder the study queue copied);
the run is labelled by its folder name. See `gridlstm.analysis.probe_figure`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gridlstm.analysis.probe_figure import ProbeError, plot


def main(argv: list[str]) -> int:
    outs = [a.split("=", 1)[1] for a in argv if a.startswith("out=")]
    runs = [Path(a) for a in argv if not a.startswith("out=")]
    if len(outs) != 1 or not runs:
        print("usage: probe_figure.py out=FIGURE.png RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    try:
        plot({run.name: run for run in runs}, Path(outs[0]))
    except ProbeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {outs[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

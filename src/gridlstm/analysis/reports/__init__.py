"""Reports a claims study writes beside its page that its declaration cannot (yet) state as
two cells: a table of every depth, the restated verdicts of a re-run. Each module's
``outputs(claims_dir)`` gives the files and their text; ``python -m gridlstm.tables
report=<name>`` writes them and ``check=true`` compares them with the committed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gridlstm.analysis.reports import (
    deep_tied,
    paper_regime_depths,
    priority_none,
    secondary_arms,
)

REPORTS: dict[str, Callable[[Path], dict[Path, str]]] = {
    "deep_tied": deep_tied.outputs,
    "paper_regime_depths": paper_regime_depths.outputs,
    "priority_none": priority_none.outputs,
    "secondary_arms": secondary_arms.outputs,
}

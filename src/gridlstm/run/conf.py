"""Where the config directory is before Hydra runs (what the commands compose from); inside a
running Hydra app: `gridlstm.run.hydra_runtime.config_dir`."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT_CONF = Path(__file__).resolve().parents[3] / "conf"  # src/gridlstm/run/ -> conf/


def find_conf_dir() -> Path | None:
    """Where ``train.yaml`` lives before Hydra runs: $GRIDLSTM_CONF, the source checkout's
    conf/, ./conf."""
    candidates = [Path(os.environ["GRIDLSTM_CONF"])] if os.environ.get("GRIDLSTM_CONF") else []
    candidates += [CHECKOUT_CONF, Path.cwd() / "conf"]
    return next((c.resolve() for c in candidates if (c / "train.yaml").is_file()), None)

"""Where the config directory is: before Hydra runs (`find_conf_dir`, what the commands
compose from) and inside a running Hydra app (`config_dir`)."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT_CONF = Path(__file__).resolve().parents[3] / "conf"  # src/gridlstm/run/ -> conf/


def find_conf_dir() -> Path | None:
    """Where ``train.yaml`` lives before Hydra runs: $GRIDLSTM_CONF, the source checkout's
    conf/, ./conf (`config_dir` is the one a running Hydra app uses)."""
    candidates = [Path(os.environ["GRIDLSTM_CONF"])] if os.environ.get("GRIDLSTM_CONF") else []
    candidates += [CHECKOUT_CONF, Path.cwd() / "conf"]
    return next((c.resolve() for c in candidates if (c / "train.yaml").is_file()), None)


def config_dir() -> Path | None:
    """The primary config directory of the running Hydra app (the repo's ``conf/``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    return None

"""Grid LSTM reference implementation.

Layers, each importing only those before it: `gridlstm.nn` (pure PyTorch: the grid, its
backends, models built on it), `gridlstm.data` (LightningDataModules), `gridlstm.tasks`
(LightningModules), `gridlstm.run` (training glue, checkpoints), `gridlstm.analysis`
(tables, benchmarks). The modules beside them are the commands (``python -m gridlstm.X``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridlstm")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Modules that moved in 0.2 (old path -> new path). Saved configs and checkpoints name classes
# by import path (``_target_``), and users' code imports these: the old paths keep working
# as aliases of the same module objects, with a DeprecationWarning.
MOVED = {
    **{f"gridlstm.{m}": f"gridlstm.run.{m}" for m in (
        "callbacks", "checkpoints", "config", "console", "launch", "loggers", "runs",
        "sweeps", "threads",
    )},  # fmt: skip
    "gridlstm.aggregate": "gridlstm.analysis.aggregate",
    "gridlstm.nn.wavefront": "gridlstm.nn.backends.hyperplane",
    "gridlstm.nn.handwritten": "gridlstm.nn.backends.hyperplane.handwritten",
    "gridlstm.nn.scan": "gridlstm.nn.backends.scan",
    "gridlstm.nn.compiled": "gridlstm.nn.backends.compiled",
    **{f"gridlstm.nn.{m}": f"gridlstm.nn.models.{m}" for m in (
        "baselines", "decoding", "image", "reencoder", "seq2seq", "stacked", "token_model",
    )},  # fmt: skip
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path (`MOVED`) as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201, ARG002
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):  # noqa: ANN001, ANN201
        warnings.warn(
            f"{spec.name} moved to {MOVED[spec.name]}; the old path will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system sets this spec on it next
        return module

    def exec_module(self, module) -> None:  # noqa: ANN001
        """Nothing to run (the module at the new path is executed); give it its own spec
        back, so that it keeps its name for reloads and tools."""
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())

"""Grid LSTM reference implementation.

Layers, each importing only those before it: `gridlstm.nn` (pure PyTorch: the grid, its
backends, models built on it), `gridlstm.data` (LightningDataModules), `gridlstm.tasks`
(LightningModules), `gridlstm.run` (training glue, checkpoints), `gridlstm.analysis`
(tables, benchmarks). The modules beside them are the commands (``python -m gridlstm.X``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridlstm")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

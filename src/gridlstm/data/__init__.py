"""LightningDataModules, one per task.

The classes load on first use (PEP 562), so that a command reaching `gridlstm.data.files`
(``--help``, the sweep report) does not import Lightning and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "AdditionDataModule": "addition",
    "Enwik8DataModule": "enwik8",
    "MemorizationDataModule": "memorization",
    "MNISTDataModule": "mnist",
    "ParityDataModule": "parity",
    "SequenceFilesDataModule": "sequences",
    "ImageFolderDataModule": "image_folder",
    "TextDataModule": "text",
    "TranslationDataModule": "translation",
}

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)

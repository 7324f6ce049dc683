"""LightningDataModules, one per task."""

from gridlstm.data.addition import AdditionDataModule
from gridlstm.data.memorization import MemorizationDataModule
from gridlstm.data.parity import ParityDataModule

__all__ = ["AdditionDataModule", "MemorizationDataModule", "ParityDataModule"]

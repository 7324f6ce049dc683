"""LightningDataModules, one per task."""

from gridlstm.data.addition import AdditionDataModule
from gridlstm.data.enwik8 import Enwik8DataModule
from gridlstm.data.memorization import MemorizationDataModule
from gridlstm.data.mnist import MNISTDataModule
from gridlstm.data.parity import ParityDataModule
from gridlstm.data.text import TextDataModule
from gridlstm.data.translation import TranslationDataModule

__all__ = [
    "AdditionDataModule",
    "Enwik8DataModule",
    "MemorizationDataModule",
    "MNISTDataModule",
    "ParityDataModule",
    "TextDataModule",
    "TranslationDataModule",
]

"""LightningDataModules, one per task."""

from gridlstm.data.addition import AdditionDataModule

__all__ = ["AdditionDataModule"]

"""LightningModules: one per task family; they own loss, metrics and logging."""

from gridlstm.tasks.algorithmic import AlgorithmicSequenceModule

__all__ = ["AlgorithmicSequenceModule"]

"""LightningModules: one per task family; they own loss, metrics and logging."""

from gridlstm.tasks.algorithmic import AlgorithmicSequenceModule
from gridlstm.tasks.classification import VectorClassificationModule

__all__ = ["AlgorithmicSequenceModule", "VectorClassificationModule"]

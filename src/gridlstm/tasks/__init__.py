"""LightningModules: one per task family; they own loss, metrics and logging."""

from gridlstm.tasks.algorithmic import AlgorithmicSequenceModule
from gridlstm.tasks.classification import VectorClassificationModule
from gridlstm.tasks.image import ImageClassificationModule
from gridlstm.tasks.language_model import LanguageModelModule
from gridlstm.tasks.sequences import SequenceLabelsModule
from gridlstm.tasks.translation import TranslationModule

__all__ = [
    "AlgorithmicSequenceModule",
    "ImageClassificationModule",
    "LanguageModelModule",
    "SequenceLabelsModule",
    "TranslationModule",
    "VectorClassificationModule",
]

"""Pure-PyTorch Grid LSTM modules (no Lightning, no Hydra)."""

from gridlstm.nn.grid2d import Grid2dLSTM
from gridlstm.nn.stacked import StackedLSTM
from gridlstm.nn.token_model import TokenSequenceModel, count_parameters

__all__ = ["Grid2dLSTM", "StackedLSTM", "TokenSequenceModel", "count_parameters"]

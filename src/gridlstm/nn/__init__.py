"""Pure-PyTorch Grid LSTM modules (no Lightning, no Hydra)."""

from gridlstm.nn.block import GridBlock, LSTMTransform, NonLSTMTransform
from gridlstm.nn.grid import GridLSTM
from gridlstm.nn.grid2d import Grid2dLSTM
from gridlstm.nn.stacked import StackedLSTM
from gridlstm.nn.token_model import TokenSequenceModel, count_parameters

__all__ = [
    "GridBlock",
    "GridLSTM",
    "Grid2dLSTM",
    "LSTMTransform",
    "NonLSTMTransform",
    "StackedLSTM",
    "TokenSequenceModel",
    "count_parameters",
]

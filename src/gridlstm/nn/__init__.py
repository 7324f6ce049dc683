"""Pure-PyTorch Grid LSTM modules (no Lightning, no Hydra)."""

from gridlstm.nn import dispatch
from gridlstm.nn.block import GridBlock, LSTMTransform, NonLSTMTransform
from gridlstm.nn.grid import GridLSTM
from gridlstm.nn.grid2d import Grid2dLSTM
from gridlstm.nn.models.baselines import DeepFeedForward, MDLSTM2d, StackedCellLSTM
from gridlstm.nn.models.decoding import beam_search, greedy
from gridlstm.nn.models.image import Grid3dImageEncoder, MDLSTMImage, RowLSTM, SmallCNN
from gridlstm.nn.models.reencoder import Reencoder
from gridlstm.nn.models.seq2seq import AttentionSeq2Seq, Seq2Seq, TransformerSeq2Seq
from gridlstm.nn.models.stacked import StackedGRU, StackedLSTM
from gridlstm.nn.models.token_model import TokenSequenceModel, detach_state
from gridlstm.nn.sizing import count_parameters

__all__ = [
    "AttentionSeq2Seq",
    "Reencoder",
    "Seq2Seq",
    "TransformerSeq2Seq",
    "DeepFeedForward",
    "MDLSTM2d",
    "StackedCellLSTM",
    "StackedGRU",
    "GridBlock",
    "GridLSTM",
    "Grid2dLSTM",
    "Grid3dImageEncoder",
    "MDLSTMImage",
    "RowLSTM",
    "SmallCNN",
    "LSTMTransform",
    "NonLSTMTransform",
    "StackedLSTM",
    "TokenSequenceModel",
    "beam_search",
    "count_parameters",
    "detach_state",
    "dispatch",
    "greedy",
]

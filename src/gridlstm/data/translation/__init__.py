"""Sentence-pair translation data: `readers` (file formats, split), `tokenizers` (byte-level
BPE), `batching` (dataset, collate, length buckets) and the `datamodule`."""

from gridlstm.data.translation.batching import BucketSampler, PairDataset, collate
from gridlstm.data.translation.datamodule import TranslationDataModule
from gridlstm.data.translation.readers import (
    FORMATS,
    DataError,
    check_pair,
    infer_format,
    read_hf,
    read_lines,
    read_pairs,
    read_text_pair,
    read_tsv,
    shuffle_split,
)
from gridlstm.data.translation.tokenizers import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    decode,
    encode,
    tokens_to_tensor,
    train_tokenizer,
)

__all__ = [
    "BOS",
    "EOS",
    "FORMATS",
    "PAD",
    "SPECIALS",
    "BucketSampler",
    "DataError",
    "PairDataset",
    "TranslationDataModule",
    "check_pair",
    "collate",
    "decode",
    "encode",
    "infer_format",
    "read_hf",
    "read_lines",
    "read_pairs",
    "read_text_pair",
    "read_tsv",
    "shuffle_split",
    "tokens_to_tensor",
    "train_tokenizer",
]

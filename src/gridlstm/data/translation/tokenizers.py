"""Byte-level BPE tokenizers (Hugging Face ``tokenizers``), one per side.

Trained on the training split only; byte-level BPE round-trips any text exactly, so BLEU is
computed on the real detokenised output. Ids 0-2 are <pad>, <s>, </s> on both sides.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor

SPECIALS = ("<pad>", "<s>", "</s>")
PAD, BOS, EOS = 0, 1, 2


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (lossless: decode(encode(s)) == s) with <pad>, <s>, </s> as ids 0-2."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Token ids -> text, stopping at </s> and skipping <pad>/<s>."""
    kept = []
    for i in ids:
        if i == EOS:
            break
        if i > EOS:
            kept.append(i)
    return tokenizer.decode(kept, skip_special_tokens=True).strip()


def tokens_to_tensor(tokenizer: Tokenizer, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Right-padded ids and lengths of source sentences (for decoding new text)."""
    ids = [ids or [EOS] for ids in encode(tokenizer, texts)]  # an empty line reads as </s>
    lengths = torch.tensor([len(i) for i in ids])
    out = torch.full((len(ids), int(lengths.max())), PAD, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq)
    return out, lengths

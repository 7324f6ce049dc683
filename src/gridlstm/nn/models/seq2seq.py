"""Sequence-to-sequence models for translation: the interface every model implements, and
the two standard neural baselines the Reencoder is compared with.

Interface (`Seq2Seq`): ``forward(src, src_lengths, tgt_in) -> logits`` with teacher forcing
(``tgt_in`` = <s> y_1 .. y_n, logits predict y_1 .. y_n </s>); and for decoding one token at a
time ``start(src, src_lengths) -> state``, ``step(state, tokens) -> (logits, state)``,
``reorder(state, index) -> state`` (beam search picks rows). Sources are right-padded with
id 0; ``src_lengths`` are the real lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gridlstm.nn.precision import run_rnn


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of (B, S, ...); padding stays last."""
    steps = torch.arange(x.shape[1], device=x.device)
    lengths = lengths.to(x.device)
    index = torch.where(steps[None] < lengths[:, None], lengths[:, None] - 1 - steps[None], steps)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def padding_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, S) True at padding positions."""
    return torch.arange(steps, device=lengths.device)[None] >= lengths[:, None]


class Seq2Seq(nn.Module):
    """Base class: teacher-forced `forward` and incremental `start` / `step` / `reorder`."""

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        raise NotImplementedError

    def start(self, src: Tensor, src_lengths: Tensor) -> Any:
        raise NotImplementedError

    def step(self, state: Any, tokens: Tensor) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def reorder(self, state: Any, index: Tensor) -> Any:
        raise NotImplementedError


# ---------------------------------------------------------------------------- LSTM + attention
@dataclass
class AttentionState:
    memory: Tensor  # (B, S, d) encoder outputs
    mask: Tensor  # (B, S) True at padding
    hidden: tuple[Tensor, Tensor]  # decoder (h, c), each (L, B, d)


class AttentionSeq2Seq(Seq2Seq):
    """LSTM encoder-decoder with attention (Luong et al. 2015, "general" score): a
    bidirectional encoder (its two directions concatenated and projected to d), a stacked
    LSTM decoder started from the projected final encoder states, and per target position
    a context vector over the source that is combined with the decoder state before the
    softmax: h~ = tanh(W_c [c; h]).
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        d = hidden_size
        self.hidden_size, self.num_layers = d, num_layers
        self.src_embed = nn.Embedding(src_vocab_size, d)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d)
        inner = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(
            d, d, num_layers, batch_first=True, bidirectional=True, dropout=inner
        )
        self.bridge = nn.Linear(2 * d, d)  # encoder outputs and final states -> d
        self.decoder = nn.LSTM(d, d, num_layers, batch_first=True, dropout=inner)
        self.score = nn.Linear(d, d, bias=False)
        self.combine = nn.Linear(2 * d, d)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d, tgt_vocab_size)

    def start(self, src: Tensor, src_lengths: Tensor) -> AttentionState:
        embedded = self.drop(self.src_embed(src))
        packed = pack_padded_sequence(
            embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = run_rnn(self.encoder, packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        memory = self.bridge(out)

        def merge(state: Tensor) -> Tensor:  # (2L, B, d) fwd/bwd interleaved -> (L, B, d)
            state = state.view(self.num_layers, 2, *state.shape[1:])
            return torch.tanh(self.bridge(torch.cat([state[:, 0], state[:, 1]], -1)))

        return AttentionState(memory, padding_mask(src_lengths, src.shape[1]), (merge(h), merge(c)))

    def _attend(self, state: AttentionState, out: Tensor) -> Tensor:
        """Logits for decoder outputs (B, T, d) attending over the encoder memory."""
        scores = self.score(out) @ state.memory.transpose(1, 2)  # (B, T, S)
        scores = scores.masked_fill(state.mask[:, None, :], float("-inf"))
        context = scores.softmax(-1) @ state.memory
        attentional = torch.tanh(self.combine(torch.cat([context, out], -1)))
        return self.head(self.drop(attentional))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        state = self.start(src, src_lengths)
        out, _ = run_rnn(self.decoder, self.drop(self.tgt_embed(tgt_in)), state.hidden)
        return self._attend(state, out)

    def step(self, state: AttentionState, tokens: Tensor) -> tuple[Tensor, AttentionState]:
        embedded = self.drop(self.tgt_embed(tokens))[:, None]
        out, hidden = run_rnn(self.decoder, embedded, state.hidden)
        logits = self._attend(state, out)[:, 0]
        return logits, AttentionState(state.memory, state.mask, hidden)

    def reorder(self, state: AttentionState, index: Tensor) -> AttentionState:
        h, c = state.hidden
        return AttentionState(
            state.memory.index_select(0, index),
            state.mask.index_select(0, index),
            (h.index_select(1, index), c.index_select(1, index)),
        )


# ---------------------------------------------------------------------------- Transformer
@dataclass
class TransformerState:
    memory: Tensor  # (B, S, d) encoder output
    mask: Tensor  # (B, S) True at padding
    prefix: Tensor  # (B, t) decoder inputs so far


class TransformerSeq2Seq(Seq2Seq):
    """A small `torch.nn.Transformer` encoder-decoder (pre-norm, sinusoidal positions,
    shared-nothing embeddings). Incremental decoding re-runs the decoder on the prefix (the
    encoder memory is computed once); the causal mask makes that equal to the full forward.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        heads: int = 4,
        ff_mult: int = 4,
        dropout: float = 0.0,
        max_positions: int = 1024,
    ) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by heads ({heads})")
        d = hidden_size
        self.hidden_size = d
        self.src_embed = nn.Embedding(src_vocab_size, d)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d)
        self.transformer = nn.Transformer(
            d,
            heads,
            num_layers,
            num_layers,
            ff_mult * d,
            dropout,
            batch_first=True,
            norm_first=True,
        )
        self.head = nn.Linear(d, tgt_vocab_size)
        position = torch.arange(max_positions)[:, None]
        freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        table = torch.zeros(max_positions, d)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq[: d // 2])
        self.register_buffer("positions", table, persistent=False)
        self.drop = nn.Dropout(dropout)

    def _embed(self, embed: nn.Embedding, tokens: Tensor) -> Tensor:
        steps = tokens.shape[1]
        if steps > self.positions.shape[0]:
            raise ValueError(f"sequence of {steps} tokens > max_positions")
        scaled = embed(tokens) * math.sqrt(self.hidden_size)
        return self.drop(scaled + self.positions[:steps])

    def start(self, src: Tensor, src_lengths: Tensor) -> TransformerState:
        mask = padding_mask(src_lengths, src.shape[1])
        memory = self.transformer.encoder(
            self._embed(self.src_embed, src), src_key_padding_mask=mask
        )
        empty = src.new_zeros(src.shape[0], 0)
        return TransformerState(memory, mask, empty)

    def _decode(self, state: TransformerState, tgt_in: Tensor) -> Tensor:
        steps = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(steps, device=tgt_in.device)
        out = self.transformer.decoder(
            self._embed(self.tgt_embed, tgt_in),
            state.memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=state.mask,
        )
        return self.head(out)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        return self._decode(self.start(src, src_lengths), tgt_in)

    def step(self, state: TransformerState, tokens: Tensor) -> tuple[Tensor, TransformerState]:
        prefix = torch.cat([state.prefix, tokens[:, None]], 1)
        logits = self._decode(state, prefix)[:, -1]
        return logits, TransformerState(state.memory, state.mask, prefix)

    def reorder(self, state: TransformerState, index: Tensor) -> TransformerState:
        return TransformerState(
            state.memory.index_select(0, index),
            state.mask.index_select(0, index),
            state.prefix.index_select(0, index),
        )

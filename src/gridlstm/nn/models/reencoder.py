"""The Reencoder: a 3-LSTM over target x source x depth for translation (paper section 4.4).

The paper describes the model as a Grid LSTM whose two grid dimensions run along the target
and the source sentence, with depth as the third dimension. What it leaves open is ours
(docs/translation.md):

* the input at cell (j, i) is the embedding of target token j (the decoder input: <s> y_1 ..)
  and of source token i, projected together (one linear map of the concatenation, computed as
  the sum of two per-side projections);
* the prediction of target token j+1 is read from the top-layer hidden vector at the last
  real source position of column j: after re-reading ("re-encoding") the whole source in the
  light of the target prefix y_<=j;
* along both grid dimensions the state flows in increasing index, so cell (j, i) sees only
  target tokens <= j: no prediction sees a later target token. Padding sits after the real
  tokens on both sides and so never reaches a read-out position;
* ``direction`` scans the source forwards, backwards (the real tokens reversed, padding still
  last) or both (two grids, their read-outs concatenated).

Decoding adds one target column at a time: `step` runs the grid on a 1 x S slice whose
incoming target-dimension state is the previous column's outgoing state, which is exactly
the full forward's computation for that column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gridlstm.nn.grid import GridLSTM
from gridlstm.nn.models.seq2seq import Seq2Seq, reverse_padded

DIRECTIONS = ("forward", "backward", "both")


@dataclass
class ReencoderState:
    """What `Reencoder.step` carries: the source-side input projections (per scan), the last
    column's outgoing target-dimension state (per scan) and the source lengths."""

    sources: list[Tensor]  # (B, S, d)
    columns: list[tuple[Tensor, Tensor] | None]  # (h, m) each (L, B, S, d)
    lengths: Tensor  # (B,)


class Reencoder(Seq2Seq):
    """A 3-LSTM translation model (grid dims: target, source; plus depth).

    Args:
        src_vocab_size: source vocabulary size (from the data).
        tgt_vocab_size: target vocabulary size (from the data).
        hidden_size: d of every cell (also the embedding size).
        num_layers: blocks along depth.
        direction: ``forward`` | ``backward`` | ``both`` scan of the source dimension.
        dropout: on embeddings and on the read-out (and between layers, see `GridLSTM`).
        **grid: every other `GridLSTM` option (tied, priority, output_form, ...).
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        direction: str = "forward",
        dropout: float = 0.0,
        **grid: Any,
    ) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        if grid.get("input_dims", ("depth",)) not in (("depth",), ["depth"]):
            raise ValueError("the Reencoder feeds its input at the bottom of depth (input_dims)")
        d = hidden_size
        self.hidden_size, self.direction = d, direction
        self.src_embed = nn.Embedding(src_vocab_size, d)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d)
        scans = 2 if direction == "both" else 1
        # (W_src e_src + W_tgt e_tgt + b): one linear map of the concatenated embeddings.
        self.src_proj = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(scans)])
        self.tgt_proj = nn.ModuleList([nn.Linear(d, d) for _ in range(scans)])
        self.grids = nn.ModuleList(
            [
                GridLSTM(
                    d,
                    d,
                    num_layers,
                    grid_dims=2,
                    project_input=False,
                    dropout=dropout,
                    batch_first=True,
                    **grid,
                )
                for _ in range(scans)
            ]
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d * scans, tgt_vocab_size)

    def _sources(self, src: Tensor, lengths: Tensor) -> list[Tensor]:
        embedded = self.drop(self.src_embed(src))
        flips = {"forward": [False], "backward": [True], "both": [False, True]}[self.direction]
        return [
            proj(reverse_padded(embedded, lengths) if flip else embedded)
            for proj, flip in zip(self.src_proj, flips, strict=True)
        ]

    def _read(self, outputs: list[Tensor], lengths: Tensor) -> Tensor:
        """Top-layer h at each row's last real source position: (B, T, d * scans)."""
        index = (lengths - 1).view(-1, 1, 1, 1)
        reads = [
            out.gather(2, index.expand(out.shape[0], out.shape[1], 1, out.shape[3])).squeeze(2)
            for out in outputs
        ]
        return self.head(self.drop(torch.cat(reads, -1)))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for the targets after each decoder input token."""
        target = self.drop(self.tgt_embed(tgt_in))
        outputs = []
        for proj, grid, source in zip(
            self.tgt_proj, self.grids, self._sources(src, src_lengths), strict=True
        ):
            cells = proj(target).unsqueeze(2) + source.unsqueeze(1)  # (B, T, S, d)
            outputs.append(grid(cells)[0])
        return self._read(outputs, src_lengths)

    def start(self, src: Tensor, src_lengths: Tensor) -> ReencoderState:
        sources = self._sources(src, src_lengths)
        return ReencoderState(sources, [None] * len(sources), src_lengths)

    def step(self, state: ReencoderState, tokens: Tensor) -> tuple[Tensor, ReencoderState]:
        """Logits (B, V) after one more target token per row, and the next state."""
        target = self.drop(self.tgt_embed(tokens))  # (B, d)
        outputs, columns = [], []
        for proj, grid, source, column in zip(
            self.tgt_proj, self.grids, state.sources, state.columns, strict=True
        ):
            cells = (proj(target)[:, None, :] + source).unsqueeze(1)  # (B, 1, S, d)
            boundary = None
            if column is not None:
                zeros = cells.new_zeros(grid.num_layers, cells.shape[0], 1, self.hidden_size)
                boundary = [column, (zeros, zeros)]
            out, final = grid(cells, boundary)
            outputs.append(out)
            columns.append(final[0])
        logits = self._read(outputs, state.lengths)[:, 0]
        return logits, ReencoderState(state.sources, columns, state.lengths)

    def reorder(self, state: ReencoderState, index: Tensor) -> ReencoderState:
        return ReencoderState(
            [s.index_select(0, index) for s in state.sources],
            [
                None if c is None else (c[0].index_select(1, index), c[1].index_select(1, index))
                for c in state.columns
            ],
            state.lengths.index_select(0, index),
        )

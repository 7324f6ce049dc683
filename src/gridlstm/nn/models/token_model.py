"""Token sequence model: embedding -> recurrent backbone -> (dropout) -> softmax head.

The backbone is any module with the `nn.LSTM` interface (``input_size``, ``hidden_size``, an
optional ``output_size``, ``forward(x, state) -> (output, state)``, built with
``batch_first=True``), so the same wrapper serves
the grid models and the baselines: training (teacher forcing, with the state carried across
truncated-BPTT chunks), greedy decoding, and sampling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_positive, check_probability


def detach_state(state: Any) -> Any:
    """The state with every tensor detached (truncated BPTT: keep values, cut the graph)."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


class TokenSequenceModel(nn.Module):
    """Args:
    vocab_size: tokens in the vocabulary.
    backbone: the recurrent network (`Grid2dLSTM`, `StackedLSTM`, ...).
    dropout: on the backbone's output before the softmax head (the "output dropout" of
        char-rnn-style models; dropout between layers is the backbone's own option).
    embedding_std: standard deviation of the embedding's normal initialisation; None keeps
        PyTorch's (1.0). Why a knob: the embedding is the vector that enters the bottom of
        the network, and in a tied grid it meets the same weights as every layer's hidden
        vectors, which are much smaller (docs/model.md section 1.5).
    """

    def __init__(
        self,
        vocab_size: int,
        backbone: nn.Module,
        dropout: float = 0.0,
        embedding_std: float | None = None,
    ) -> None:
        super().__init__()
        check_positive("vocab_size", vocab_size)
        check_probability("dropout", dropout)
        name = type(backbone).__name__
        if not hasattr(backbone, "batch_first") or getattr(backbone, "grid_dims", 1) != 1:
            raise ValueError(
                f"the backbone ({name}) is not a sequence model: TokenSequenceModel needs one "
                "with nn.LSTM's interface over one sequence dimension (Grid2dLSTM, "
                "StackedLSTM, StackedGRU, StackedCellLSTM, GridLSTM(grid_dims=1))"
            )
        if backbone.batch_first is not True:
            raise ValueError(
                f"the backbone ({name}) must be built with batch_first=True: "
                "TokenSequenceModel feeds it (batch, time, features)"
            )
        self.embedding = nn.Embedding(vocab_size, backbone.input_size)
        if embedding_std is not None:
            if not embedding_std > 0:
                raise ValueError(f"embedding_std must be > 0 (or None), got {embedding_std!r}")
            nn.init.normal_(self.embedding.weight, std=embedding_std)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(getattr(backbone, "output_size", backbone.hidden_size), vocab_size)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits (batch, time, vocab) for every position, and the final state."""
        output, state = self.backbone(self.embedding(tokens), state)
        return self.head(self.dropout(output)), state

    @torch.no_grad()
    def greedy_continue(self, prompt: Tensor, steps: int) -> Tensor:
        """Greedily generate ``steps`` tokens after ``prompt`` (batch, time), feeding back
        each prediction (no teacher forcing). Returns (batch, steps)."""
        return self.sample(prompt, steps, temperature=0.0)

    @torch.no_grad()
    def sample(
        self,
        prompt: Tensor,
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate ``steps`` tokens after ``prompt`` (batch, time), each drawn from the
        softmax of logits / ``temperature`` restricted to the ``top_k`` most likely tokens,
        and fed back. ``temperature=0`` is greedy decoding. Returns (batch, steps)."""
        check_positive("steps", steps)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature!r}")
        if top_k is not None:
            check_positive("top_k", top_k)
        logits, state = self(prompt)
        generated = []
        for step in range(steps):
            token = self._choose(logits[:, -1], temperature, top_k, generator)
            generated.append(token)
            if step + 1 < steps:
                logits, state = self(token, state)
        return torch.cat(generated, dim=1)

    @staticmethod
    def _choose(
        logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> Tensor:
        if temperature == 0:
            return logits.argmax(-1, keepdim=True)
        logits = logits.float() / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)

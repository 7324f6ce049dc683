"""Token sequence model: embedding -> recurrent backbone -> softmax head.

The backbone is any module with the `nn.LSTM` interface (``input_size``, ``hidden_size``, an
optional ``output_size``, ``forward(x, state) -> (output, state)``), so the same wrapper serves
the grid models and the baselines, for training (teacher forcing) and for step-by-step greedy
decoding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_positive


class TokenSequenceModel(nn.Module):
    def __init__(self, vocab_size: int, backbone: nn.Module) -> None:
        super().__init__()
        check_positive("vocab_size", vocab_size)
        self.embedding = nn.Embedding(vocab_size, backbone.input_size)
        self.backbone = backbone
        self.head = nn.Linear(getattr(backbone, "output_size", backbone.hidden_size), vocab_size)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits (batch, time, vocab) for every position, and the final state."""
        output, state = self.backbone(self.embedding(tokens), state)
        return self.head(output), state

    @torch.no_grad()
    def greedy_continue(self, prompt: Tensor, steps: int) -> Tensor:
        """Greedily generate ``steps`` tokens after ``prompt`` (batch, time), feeding back
        each prediction (no teacher forcing). Returns (batch, steps)."""
        logits, state = self(prompt)
        token = logits[:, -1].argmax(-1, keepdim=True)
        generated = [token]
        for _ in range(steps - 1):
            logits, state = self(token, state)
            token = logits[:, -1].argmax(-1, keepdim=True)
            generated.append(token)
        return torch.cat(generated, dim=1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""Sequence memorization (docs/protocols.md): read a random sequence, then reproduce it.

Layout with ``length = n`` and ``vocab`` tokens in all (the last two are special):

    x_1 .. x_n  <sep>  x_1 .. x_n  <end>
    <-- prompt ------>  <-- answer ---->

Symbols are uniform over the ``vocab - 2`` ordinary tokens [ours: 20 symbols from 64 by
default, docs/protocols.md]. Loss and scoring are on the answer only, like addition;
``feedback`` says what the model reads during the answer (`gridlstm.data.feedback`: the
previous answer symbol, or a blank that is one more token after ``vocab``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gridlstm.data import feedback as answers
from gridlstm.data.contracts import SequenceProblems
from gridlstm.data.synthetic import SyntheticDataModule
from gridlstm.nn.checks import check_positive

SPECIAL = 2  # separator, end


class MemorizationDataModule(SyntheticDataModule):
    """Random sequences of ``length`` symbols to copy.

    Args:
        length: symbols per sequence (>= 1).
        vocab: tokens in all, including the separator and the end token (>= 3).
        feedback: ``teacher`` (the previous answer symbol is read during the answer) or
            ``none`` (a blank is read; the answer comes from the model's state).
        **kwargs: batch sizes, epoch length, held-out sizes, train_pool, seed
            (`SyntheticDataModule`).
    """

    def __init__(
        self, length: int = 20, vocab: int = 64, feedback: str = "teacher", **kwargs: Any
    ) -> None:
        check_positive("length", length)
        answers.check_feedback(feedback)
        if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < SPECIAL + 1:
            raise ValueError(
                f"vocab must be an integer >= {SPECIAL + 1}: it includes the {SPECIAL} special "
                f"symbols (separator, end) and at least one symbol to copy; got {vocab!r}"
            )
        super().__init__(**kwargs)
        self.length, self.vocab, self.feedback = length, vocab, feedback
        self.vocab_size = answers.model_vocab_size(feedback, vocab)
        self.symbols = vocab - SPECIAL
        self.separator, self.end = vocab - 2, vocab - 1
        self.prompt_length = self.answer_length = length + 1
        self.check_held_out_sizes(f"length={length}, vocab={vocab}")

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, self.symbols, (count, self.length), generator=generator)

    def num_problems(self) -> int:
        return self.symbols**self.length

    def encode(self, problems: Tensor) -> Tensor:
        count = problems.shape[0]
        separator = torch.full((count, 1), self.separator, dtype=torch.long)
        end = torch.full((count, 1), self.end, dtype=torch.long)
        return torch.cat([problems, separator, problems, end], dim=1)

    def module_kwargs(self) -> SequenceProblems:
        return {
            "vocab_size": self.vocab_size,
            "prompt_length": self.prompt_length,
            "answer_length": self.answer_length,
            "end_token": self.end,
            "blank_token": answers.blank_token(self.feedback, self.vocab),
        }

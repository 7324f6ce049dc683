"""Integer addition (docs/protocols.md): ``a + b =`` then the sum, digit by digit.

Layout of one example with ``digits = n`` (all rows have the same length, so no padding):

    a_1 .. a_n  +  b_1 .. b_n  =  s_0 .. s_n  .
    <------------ prompt ----------> <-- answer -->

Operands are uniform over [0, 10^n) written with leading zeros, the sum has n + 1 digits
and ``.`` ends the answer [ours]. ``reverse=True`` writes every number least significant
digit first [ours; off by default]. ``feedback`` says what the model reads during the
answer: the previous answer digit (``teacher``) or a blank (``none``, `gridlstm.data.feedback`).
Digits are generated directly as digit tensors, so any n works (no integer overflow at n = 15
or beyond).

Validation and test sets are fixed by ``data_seed`` and disjoint from each other; training
examples are drawn afresh every epoch (different per rank and worker) and never equal a
held-out problem.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gridlstm.data import feedback as answers
from gridlstm.data.contracts import SequenceProblems
from gridlstm.data.synthetic import SyntheticDataModule
from gridlstm.nn.checks import check_positive

VOCAB = "0123456789+=."
PLUS, EQUALS, EOS = VOCAB.index("+"), VOCAB.index("="), VOCAB.index(".")


def prompt_length(digits: int) -> int:
    return 2 * digits + 2


def answer_length(digits: int) -> int:
    """Sum digits plus the end token."""
    return digits + 2


def add_digits(a: Tensor, b: Tensor) -> Tensor:
    """Schoolbook addition of digit tensors (most significant first) -> (count, digits + 1)."""
    total = torch.zeros(a.shape[0], a.shape[1] + 1, dtype=torch.long)
    carry = torch.zeros(a.shape[0], dtype=torch.long)
    for i in range(a.shape[1] - 1, -1, -1):
        column = a[:, i] + b[:, i] + carry
        total[:, i + 1] = column % 10
        carry = column // 10
    total[:, 0] = carry
    return total


def encode(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """Token rows ``a + b = s .`` (see the module docstring)."""
    s = add_digits(a, b)
    if reverse:
        a, b, s = a.flip(1), b.flip(1), s.flip(1)
    count = a.shape[0]

    def column(token: int) -> Tensor:
        return torch.full((count, 1), token, dtype=torch.long)

    return torch.cat([a, column(PLUS), b, column(EQUALS), s, column(EOS)], dim=1)


class AdditionDataModule(SyntheticDataModule):
    """Random ``digits``-digit additions generated from ``seed``.

    A raw problem is the row of both operands' digits (most significant first).

    Args:
        digits: number of digits of each operand (>= 1).
        reverse: write numbers least significant digit first.
        feedback: ``teacher`` (the previous answer digit is read during the answer) or
            ``none`` (a blank is read; the answer comes from the model's state).
        **kwargs: batch sizes, epoch length, held-out sizes, train_pool, seed
            (`SyntheticDataModule`).
    """

    def __init__(
        self, digits: int = 3, reverse: bool = False, feedback: str = "teacher", **kwargs: Any
    ) -> None:
        check_positive("digits", digits)
        answers.check_feedback(feedback)
        super().__init__(**kwargs)
        self.digits, self.reverse, self.feedback = digits, reverse, feedback
        self.vocab_size = answers.model_vocab_size(feedback, len(VOCAB))
        self.prompt_length = prompt_length(digits)
        self.answer_length = answer_length(digits)
        self.check_held_out_sizes(f"digits={digits}")

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 10, (count, 2 * self.digits), generator=generator)

    def num_problems(self) -> int:
        return 100**self.digits

    def encode(self, problems: Tensor) -> Tensor:
        return encode(problems[:, : self.digits], problems[:, self.digits :], self.reverse)

    def module_kwargs(self) -> SequenceProblems:
        return {
            "vocab_size": self.vocab_size,
            "prompt_length": self.prompt_length,
            "answer_length": self.answer_length,
            "end_token": EOS,
            "blank_token": answers.blank_token(self.feedback, len(VOCAB)),
        }

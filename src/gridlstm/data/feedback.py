"""How the answer of a prompt -> answer task is read: the ``feedback`` protocol knob.

Why a knob and not a fork: the same task can be posed two ways, and they ask different
questions of the model.

- ``teacher``: during the answer the model reads the previous answer token (the true one in
  training, its own greedy choice at evaluation). Each answer step then needs only local
  work plus what it just wrote, which favours one wide LSTM [ours: the suite's earlier
  default].
- ``none``: during the answer the model reads a blank token and must emit the whole answer
  from its state; training and evaluation are the same single pass, and the loss is on the
  answer positions [unverified: a public Torch addition script (no locator found) of the paper's
  15-digit task feeds blanks during the answer].

The blank is one extra token after the task's own vocabulary, present only with
``feedback=none``, so teacher-forced runs (and their checkpoints) keep their vocabulary.
"""

from __future__ import annotations

from gridlstm.nn.checks import check_choice

FEEDBACK = ("teacher", "none")


def check_feedback(feedback: str) -> None:
    check_choice("feedback", feedback, FEEDBACK)


def blank_token(feedback: str, vocab_size: int) -> int | None:
    """The blank's id (the first id after the task's own ``vocab_size`` tokens), or None
    when the answer is fed back."""
    return vocab_size if feedback == "none" else None


def model_vocab_size(feedback: str, vocab_size: int) -> int:
    """The model's vocabulary: the task's tokens plus the blank when there is one."""
    return vocab_size + (feedback == "none")

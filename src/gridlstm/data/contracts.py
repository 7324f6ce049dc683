"""What a data module tells its task module: the typed contract of ``module_kwargs()``.

Why written down: the model's sizes (vocabulary, input width, classes, image shape,
tokenizers) come from the data, and a task module is built from them
(`gridlstm.run.build.build_module` passes ``datamodule.module_kwargs()`` on) and stores them
in its checkpoints. Each data module returns one of these dictionaries; each task module
names the one it accepts (its ``DATA``) and takes every key as a constructor argument.
``tests/test_layout.py`` checks every task config's pair against this.
"""

from __future__ import annotations

from typing import TypedDict


class SequenceProblems(TypedDict):
    """Prompt-then-answer token problems (addition, memorization)."""

    vocab_size: int
    prompt_length: int
    answer_length: int
    end_token: int
    blank_token: int | None  # read during the answer instead of the previous token (feedback=none)


class BitVectors(TypedDict):
    """Fixed-width input vectors with a class each (parity)."""

    input_size: int
    num_classes: int


class Images(TypedDict):
    """Square images with a class each (MNIST)."""

    image_size: int
    channels: int
    num_classes: int


class Characters(TypedDict):
    """A character stream (enwik8, any text): the vocabulary in id order."""

    vocab_size: int
    vocab: list[str]


class SentencePairs(TypedDict):
    """Source and target sentences with their trained tokenizers (translation)."""

    src_vocab_size: int
    tgt_vocab_size: int
    src_tokenizer: str  # tokenizers.Tokenizer.to_str(): stored in checkpoints as text
    tgt_tokenizer: str
    src_lang: str
    tgt_lang: str


class LabelledSequences(TypedDict):
    """A user's sequences with one class a sequence or a step (``task=sequences``)."""

    inputs: str  # tokens (ids, embedded) | features (numbers, projected)
    target: str  # sequence | step
    input_size: int  # the vocabulary (tokens) or the features a step
    num_classes: int
    max_length: int  # the longest sequence in the data (for the compute of one sample)

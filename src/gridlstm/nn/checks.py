"""Argument checks shared by the modules of `gridlstm.nn`.

Every constructor validates its sizes up front so that a bad config fails with one
`ValueError` naming the option and the allowed values, before any tensor is allocated.
"""

from __future__ import annotations

from collections.abc import Iterable


def check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_probability(name: str, value: float) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    choices = list(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def check_sizes(input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> None:
    """The checks every recurrent module of `gridlstm.nn` makes on its sizes."""
    check_positive("hidden_size", hidden_size)
    check_positive("num_layers", num_layers)
    check_positive("input_size", input_size)
    check_probability("dropout", dropout)

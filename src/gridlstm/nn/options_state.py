"""The options that define a grid's function without showing in its weights' shapes (the
priority dimensions, the output form, the non-LSTM dimensions...) travel in its state dict.

Why: a state dict of a priority-none grid loads into a depth-priority grid with "All keys
matched" and computes another function. `FunctionOptions` stores the options as plain
values (``<prefix>_extra_state``, readable by ``torch.load(weights_only=True)``) and refuses a
state dict made under other values, naming the option. A state dict written before the
options travelled (no ``_extra_state``) still loads, strict or not; where the module's options
differ from the defaults such a state dict was most likely made with (``legacy``), a warning
names them.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

EXTRA_STATE = "_extra_state"  # PyTorch's key suffix for get_extra_state


def plain(value: Any) -> Any:
    """Lists for tuples, recursively: what a state dict round trip gives back."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class FunctionOptions:
    """Mixin for an ``nn.Module`` that calls `remember_options` in its ``__init__``."""

    def remember_options(self, legacy: dict[str, Any] | None = None, **options: Any) -> None:
        """``options``: the function-defining options; ``legacy``: the values an older
        default gave them (a state dict without options was likely made with these)."""
        self._function_options = {k: plain(v) for k, v in options.items()}
        self._legacy_options = {k: plain(v) for k, v in (legacy or {}).items()}
        nn.Module.register_load_state_dict_pre_hook(self, _fill_missing)

    def get_extra_state(self) -> dict[str, Any]:
        return {"function_options": dict(self._function_options)}

    def set_extra_state(self, state: Any) -> None:
        theirs = (state or {}).get("function_options", {}) if isinstance(state, dict) else {}
        for key, ours in self._function_options.items():
            if key in theirs and plain(theirs[key]) != ours:
                raise RuntimeError(
                    f"{type(self).__name__}: this state dict was made with {key}="
                    f"{theirs[key]!r}, and this module has {key}={ours!r}: build the module "
                    f"with {key}={theirs[key]!r} to load it (the weights alone would compute "
                    "another function)"
                )


def _fill_missing(module: FunctionOptions, state_dict: dict, prefix: str, *_: Any) -> None:
    """An older state dict has no options: take the module's own, so that it loads, and say
    where they differ from the older defaults it was likely made with."""
    if prefix + EXTRA_STATE in state_dict:
        return
    ours = module._function_options
    differ = {k: v for k, v in module._legacy_options.items() if ours.get(k) != v}
    if differ:
        named = ", ".join(f"{k}={ours[k]!r} (the older default: {v!r})" for k, v in differ.items())
        warnings.warn(
            f"{type(module).__name__}: this state dict carries no options (written before they "
            f"travelled), and this module has {named}; if it was made with the older default, "
            "build the module with that value",
            stacklevel=2,
        )
    state_dict[prefix + EXTRA_STATE] = module.get_extra_state()

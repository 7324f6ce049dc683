"""`ConfigError`, in a module of its own so that every config check can raise it without
importing the others (`gridlstm.run.config` re-exports it)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value or combination; the message is one line for the user."""


__all__ = ["ConfigError"]

"""One argument style for every command: Hydra-style ``key=value`` overrides.

``python train.py`` takes Hydra overrides; the other commands (evaluate, sample, translate,
tables, bench) take ``key=value`` too, with the same names for the same things
(``ckpt_path=``, ``out=``, ``device=``), checked against a dataclass of options before any
work starts. Values stay strings until OmegaConf merges them into the dataclass, so
``prime=true`` stays the text 'true' and ``length=abc`` is refused naming the key.
``--help`` prints the command's usage and every option with its default. A command's renamed
options (``ckpt=``) keep working.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm.run.errors import ConfigError

T = TypeVar("T")
HELP = ("-h", "--help")


def option(default: Any, help: str) -> Any:
    """A dataclass field with the help line `usage` prints."""
    return dataclasses.field(default=default, metadata={"help": help})


def _optional(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in args


def parse(
    argv: Sequence[str],
    schema: type[T],
    *,
    aliases: dict[str, str] | None = None,
    synonyms: dict[str, str] | None = None,
    extra: Callable[[str], bool] | None = None,
    extra_help: str = "",
) -> tuple[T, list[str]]:
    """``key=value`` arguments as a ``schema`` instance, plus the ``extra`` ones (keys for
    which ``extra(key)`` holds, e.g. config overrides), in order.

    ``aliases`` maps an old name to its current one (a one-line note on stderr);
    ``synonyms`` another accepted name (e.g. Hydra's ``hydra.run.dir`` for ``out``). Raises
    `ConfigError` with one line naming the argument and the valid keys.
    """
    aliases, synonyms = aliases or {}, synonyms or {}
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    valid = ", ".join(f"{name}=" for name in names) + (f", {extra_help}" if extra_help else "")
    raw: dict[str, Any] = {}
    extras: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg.startswith("-"):
            name = key.lstrip("-").replace("-", "_")
            hint = f"write {name}=VALUE" if name in names else f"valid: {valid}"
            raise ConfigError(
                f"{arg!r}: arguments are key=value, as train.py's overrides; {hint} "
                "(--help lists every option)"
            )
        if not sep or not key:
            raise ConfigError(f"argument {arg!r} is not key=value; valid: {valid}")
        if key in aliases:
            print(
                f"note: {key}= is now {aliases[key]}= (the old name still works)", file=sys.stderr
            )
            key = aliases[key]
        key = synonyms.get(key, key)
        if key in names:
            optional = _optional(hints[key])
            raw[key] = None if optional and value.lower() in ("null", "none") else value
        elif extra is not None and extra(key):
            extras.append(f"{key}={value}")
        else:
            close = difflib.get_close_matches(key, [*names, *aliases, *synonyms], n=1)
            hint = f"did you mean {synonyms.get(close[0], close[0])}=? " if close else ""
            raise ConfigError(f"unknown argument {arg!r}; {hint}valid: {valid}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), raw)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        message = str(error).splitlines()[0]
        raise ConfigError(f"{key}: {message}" if key else message) from None
    return schema(**OmegaConf.to_container(merged)), extras


def usage(doc: str, schema: type) -> str:
    """The module docstring's first two paragraphs (what and how), then every option."""
    head = "\n\n".join(doc.strip().split("\n\n")[:2])
    lines = [head, "", "options (key=value; defaults in brackets):"]
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            default = str(default).lower()  # as it is typed: skip_mnist=true
        elif isinstance(default, str) and (not default.isprintable() or " " in default):
            default = repr(default)
        shown = "" if default in ("", None) else f" [{default}]"
        lines.append(f"  {f.name + '=':<18} {f.metadata.get('help', '')}{shown}")
    return "\n".join(lines)


def run_command(
    argv: Sequence[str] | None, doc: str, schema: type, body: Callable[[list[str]], Any]
) -> Any:
    """``--help``, else ``body(argv)`` with a `ConfigError` as ``error: ...`` and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in HELP for arg in argv):
        print(usage(doc, schema))
        return None
    try:
        return body(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def positive(cfg: Any, *names: str) -> None:
    """Refuse a zero or negative value of any of the options ``names``, naming it."""
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}={getattr(cfg, name)}: must be positive")


def prefixed(extras: list[str], prefix: str) -> dict[str, object]:
    """``<prefix><option>=value`` arguments as {option: value}, values read as YAML."""
    found = {}
    for arg in extras:
        key, _, value = arg.partition("=")
        if key.startswith(prefix):
            found[key[len(prefix) :]] = yaml.safe_load(value) if value else value
    return found

"""Opening checkpoints a user did not write: weights and plain data only, and only the suite's
own classes built from them.

A checkpoint is a pickle, and the config stored in it names classes to build: either could run
code. Every tool that opens one (sample, translate, evaluate, resume) goes through here:

* `read`: ``torch.load(weights_only=True)`` (tensors and plain containers, never pickled
  code), and one `CheckpointError` line for anything unreadable.
* `plain_tree`: the stored config or hyper-parameters, resolved once (interpolations between
  its own nodes; a resolver call other than the suite's pure ones is refused), *then* walked
  at every depth, lists included: a ``_target_`` is accepted only at the positions where the
  suite puts one and only with one of the suite's classes there; hydra's other reserved keys
  are refused. What comes back is literal data: no interpolation is left to resolve later.
* `build`: an allow-listed class called with plain keyword arguments (nothing nested is
  instantiated: hydra's recursive ``instantiate`` is never used on a checkpoint's config).

Why resolve before walking: a node interpolation (``datamodule: ${x}``) is only a string
before resolution; it becomes the node ``x`` names afterwards. Hydra's own block list
(hydra-core >= 1.3.6) is a second line of defence, not this module's.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm.run.config import RESOLVER_CALL, SAFE_RESOLVERS, literal
from gridlstm.run.errors import ConfigError


class CheckpointError(ConfigError):
    """An unreadable or untrusted checkpoint; the message is one line for the user."""


def _classes(package: Any) -> dict[str, type]:
    """A package's exported classes, by their exported and their defining import path."""
    exported = {
        f"{package.__name__}.{name}": getattr(package, name)
        for name in package.__all__
        if isinstance(getattr(package, name), type)
    }
    defined = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in exported.values()}
    # ... and by the package that re-exports it (data/translation.py became a package).
    by_package = {
        f"{parent}.{cls.__qualname__}": cls
        for cls in exported.values()
        if (parent := cls.__module__.rpartition(".")[0]) in sys.modules
        and getattr(sys.modules[parent], cls.__qualname__, None) is cls
    }
    return {**by_package, **defined, **exported}


def _subclasses(module: Any, base: type) -> dict[str, type]:
    """Classes of an already imported torch module (nothing named by a file is imported)."""
    return {
        f"{module.__name__}.{name}": value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    }


@functools.cache  # the classes are fixed once imported; every _target_ looks them up
def suite_classes() -> dict[str, dict[str, type]]:
    """What a checkpoint may name, by kind: the suite's exported classes and torch's
    optimizers and schedulers (built by the training loop from ``_partial_`` configs)."""
    from gridlstm import data, nn, tasks

    return {
        "net": _classes(nn),
        "datamodule": _classes(data),
        "module": _classes(tasks),
        "optimizer": _subclasses(torch.optim, torch.optim.Optimizer),
        "scheduler": _subclasses(torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler),
    }


# Where a stored training config may hold a ``_target_``: (path, kind of class).
CONFIG_TARGETS = {
    ("model", "net"): "net",
    ("task", "datamodule"): "datamodule",
    ("task", "module"): "module",
    ("optim", "optimizer"): "optimizer",
    ("optim", "scheduler"): "scheduler",
}
# ... and a task module's stored hyper-parameters (``hyper_parameters`` of the checkpoint).
HPARAM_TARGETS = {("net",): "net", ("optimizer",): "optimizer", ("scheduler",): "scheduler"}
PARTIAL_KINDS = frozenset({"optimizer", "scheduler"})  # built later with the parameters
RESERVED = ("_args_", "_recursive_", "_convert_", "_partial_", "_target_")


def not_torch_save(path: Path) -> str | None:
    """Why a file cannot be a ``torch.save`` file (a zip archive, or a pickle before 1.6), read
    from its first bytes: torch.load's own error for a text file is a bare number."""
    with path.open("rb") as file:
        head = file.read(16)
    if not head:
        return "an empty file, not a checkpoint"
    if head.startswith((b"PK", b"\x80")):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a checkpoint (torch.save writes a zip archive)"
    return f"a text file (it begins {text.splitlines()[0][:12]!r}), not a checkpoint"


def read(path: str | Path, option: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint as tensors and plain containers, or one `CheckpointError` line."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{option}={path}: a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{option}={path}: no such file")
    if problem := not_torch_save(path):
        raise CheckpointError(f"{option}={path}: {problem}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        text = str(error).strip()
        reason = text.splitlines()[0][:160] if text else type(error).__name__
        raise CheckpointError(f"{option}={path}: not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{option}={path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _where(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(path))


def _refuse_resolvers(node: Any, path: tuple[str, ...], what: str) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            _refuse_resolvers(value, (*path, str(key)), what)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _refuse_resolvers(value, (*path, f"[{i}]"), what)
    elif isinstance(node, str):
        unescaped = node.replace("\\${", "")  # an escaped interpolation is text
        calls = set(RESOLVER_CALL.findall(unescaped)) - SAFE_RESOLVERS
        if calls:
            raise CheckpointError(
                f"{what}: {_where(path)}={node!r} calls the resolver {sorted(calls)[0]!r}, which "
                "reads outside the stored config; refusing it"
            )


def _walk(node: Any, path: tuple[str, ...], targets: Mapping[tuple, str], what: str) -> None:
    where = _where(path) or "<root>"
    if isinstance(node, Mapping):
        kind = targets.get(path)
        for key in node:
            if not isinstance(key, str):
                raise CheckpointError(f"{what}: {where} has a key {key!r} that is not text")
            if key in RESERVED and not (
                key == "_target_" and kind or key == "_partial_" and kind in PARTIAL_KINDS
            ):
                raise CheckpointError(
                    f"{what}: {where}.{key} is not allowed there; a checkpoint names classes "
                    f"only at {', '.join('.'.join(p) for p in targets)}"
                )
        if "_target_" in node:
            allowed = suite_classes()[kind]
            target = node["_target_"]
            if not isinstance(target, str) or target not in allowed:
                name = str(target).rpartition(".")[2]
                same = sorted((p for p, c in allowed.items() if c.__name__ == name), key=len)
                hint = f" (the suite's {name} is {same[0]})" if same else ""
                raise CheckpointError(
                    f"{what}: {where}._target_={target!r} is not one of the suite's {kind} "
                    f"classes{hint}; the checkpoint names something else, refusing to build it"
                )
        for key, value in node.items():
            _walk(value, (*path, key), targets, what)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _walk(value, (*path, f"[{i}]"), targets, what)
    elif not (node is None or isinstance(node, (str, int, float, bool))):
        raise CheckpointError(f"{what}: {where} holds a {type(node).__name__}, not plain data")


def _resolved(tree: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A config subtree resolved once (only between its own nodes), all text escaped after."""
    _refuse_resolvers(tree, (), what)
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(dict(tree)), resolve=True)
    except (OmegaConfBaseException, ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{what}: cannot be read as a config ({first})") from None
    return literal(resolved)


def plain_tree(tree: Mapping[str, Any], targets: Mapping[tuple, str], what: str) -> dict[str, Any]:
    """A stored config resolved and checked (module docstring); a plain dict, or a
    CheckpointError."""
    if not isinstance(tree, Mapping):
        raise CheckpointError(f"{what}: not a mapping but a {type(tree).__name__}")
    tree = _resolved(tree, what)
    _walk(tree, (), targets, what)
    return tree


def build(node: Mapping[str, Any], kind: str) -> Any:
    """The allow-listed class ``node`` names, called with its other keys (plain data)."""
    options = dict(node)
    target = options.pop("_target_", None)
    classes = suite_classes()[kind]
    if target not in classes:  # plain_tree has refused this already; never build around it
        raise CheckpointError(f"{target!r} is not one of the suite's {kind} classes")
    return classes[target](**options)


def hyper_parameters(checkpoint: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """The task module's stored arguments, checked. Only the parts that are configs (the
    backbone, optimizer and scheduler: what the module instantiates) are resolved; the rest
    is data (tokenizers as JSON text, vocabularies) and stays as stored, but is walked too."""
    what = f"{path}: hyper_parameters"
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{path}: the checkpoint stores no model arguments")
    hparams = dict(hparams)
    for (key,) in HPARAM_TARGETS:
        if isinstance(hparams.get(key), Mapping):
            hparams[key] = _resolved(hparams[key], f"{what}.{key}")
    _walk(hparams, (), HPARAM_TARGETS, what)
    return hparams


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> str | None:
    """Load ``weights`` into ``module``; a short description of any mismatch, else None."""
    mine = module.state_dict()
    resized = [
        k
        for k in weights
        if k in mine
        and torch.is_tensor(mine[k])  # a module's extra state (its options) is not a tensor
        and torch.is_tensor(weights[k])
        and mine[k].shape != weights[k].shape
    ]
    missing = [k for k in mine if k not in weights]
    unexpected = [k for k in weights if k not in mine]
    for what, keys in (("resized", resized), ("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            shapes = ""
            if what == "resized":
                stored, built = tuple(weights[keys[0]].shape), tuple(mine[keys[0]].shape)
                shapes = f" (stored {stored}, built {built})"
            return f"{what}: {keys[0]}{shapes}{more}"
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:  # e.g. weights made under another priority (nn.options_state)
        return str(error).strip().splitlines()[-1].strip()
    return None


def load_module(
    path: str | Path,
    task: str,
    module_class: type,
    not_this_task: str,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """A task module rebuilt from a checkpoint of ``task`` (the tools that need no config,
    sample and translate): its checked hyper-parameters, ``check`` (a tool's own rule, may
    raise CheckpointError) before anything is built, then the stored weights; CPU, eval
    mode. ``not_this_task``: the message for a checkpoint of another task."""
    checkpoint = read(path, "ckpt_path")
    if checkpoint.get("gridlstm_task") != task:
        raise CheckpointError(not_this_task)
    hparams = hyper_parameters(checkpoint, path)
    if check is not None:
        check(hparams)
    try:
        module = module_class(**hparams)
        problem = load_weights(module, checkpoint.get("state_dict") or {})
    except (KeyError, TypeError, ValueError, RuntimeError, InstantiationException) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else None
        error = cause or error  # Hydra's wrapper names the target; the cause says what failed
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: cannot rebuild the model ({first})") from None
    if problem:
        raise CheckpointError(
            f"{path}: its weights do not fit the model its stored config builds ({problem})"
        )
    return module.eval()

"""Sample text from a language-model checkpoint (``task=enwik8`` or ``task=text``).

    python -m gridlstm.sample ckpt=outputs/.../checkpoints/last.ckpt prime="The " \\
        length=500 temperature=0.8 top_k=20 seed=1

Checkpoints carry the vocabulary and the model config, so nothing else is needed. The same
seed gives the same text; ``temperature=0`` is greedy decoding.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gridlstm import checkpoints
from gridlstm.config import ConfigError, check_device
from gridlstm.data.text import decode, encode
from gridlstm.tasks.language_model import TASK, LanguageModelModule


@dataclass
class SampleConfig:
    ckpt: str = ""
    prime: str = "\n"
    length: int = 500
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    device: str = "cpu"


# Sequence backbones a language-model checkpoint may name: its config is data, never code.
BACKBONES = frozenset(
    f"gridlstm.nn.{name}"
    for name in ("Grid2dLSTM", "GridLSTM", "StackedLSTM", "StackedGRU", "StackedCellLSTM")
)


MAX_LENGTH = 10_000_000  # characters per call: the model samples one at a time


class SampleError(ValueError):
    """A bad argument or checkpoint; the message is one line for the user."""


def parse_args(argv: list[str]) -> SampleConfig:
    """``key=value`` arguments, like the training command's overrides. Values stay raw
    strings until checked against `SampleConfig` (so ``prime=true`` stays the text 'true')."""
    names = [f.name for f in fields(SampleConfig)]
    raw: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in names:
            valid = ", ".join(f"{name}=" for name in names)
            raise SampleError(f"unknown argument {arg!r}; valid: {valid}")
        raw[key] = None if key == "top_k" and value.lower() in ("null", "none") else value
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SampleConfig), raw)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise SampleError(f"{key}: {str(error).splitlines()[0]}" if key else str(error)) from None
    cfg = SampleConfig(**OmegaConf.to_container(merged))
    if not cfg.ckpt:
        raise SampleError("no checkpoint given: ckpt=path/to/last.ckpt")
    if not 1 <= cfg.length <= MAX_LENGTH:
        raise SampleError(f"length must be in [1, {MAX_LENGTH:,}], got {cfg.length}")
    if not (math.isfinite(cfg.temperature) and cfg.temperature >= 0):
        raise SampleError(f"temperature must be >= 0 (0: greedy), got {cfg.temperature}")
    if cfg.top_k is not None and cfg.top_k < 1:
        raise SampleError(f"top_k must be >= 1 or null, got {cfg.top_k}")
    if not cfg.prime:
        raise SampleError("prime must hold at least one character")
    try:
        check_device(cfg.device)
    except ConfigError as error:
        raise SampleError(str(error)) from None
    return cfg


def load_model(path: str | Path, device: str = "cpu") -> LanguageModelModule:
    """The language model in a checkpoint written by ``train.py`` (task=enwik8 or text),
    opened through `gridlstm.checkpoints` (weights and plain data only; suite classes only)."""

    def language_model_backbone(hparams: dict[str, Any]) -> None:
        target = (hparams.get("net") or {}).get("_target_")
        if target not in BACKBONES:
            raise checkpoints.CheckpointError(
                f"{path}: model class {target!r} is not a language-model backbone of this "
                f"suite; allowed: {', '.join(sorted(BACKBONES))}"
            )

    not_a_language_model = (
        f"{path} is not a language-model checkpoint (it has no vocabulary to sample from); "
        "use one from a run with task=enwik8 or task=text"
    )
    try:
        module = checkpoints.load_module(
            path, TASK, LanguageModelModule, not_a_language_model, language_model_backbone
        )
    except checkpoints.CheckpointError as error:
        raise SampleError(str(error)) from None
    return module.to(device)


def sample(cfg: SampleConfig) -> str:
    """The prime followed by ``cfg.length`` sampled characters."""
    module = load_model(cfg.ckpt, cfg.device)
    vocab = module.hparams.vocab
    try:
        prime = encode(cfg.prime, vocab)
    except ValueError as error:
        raise SampleError(f"prime: {error}") from None
    generator = torch.Generator(cfg.device).manual_seed(cfg.seed)
    tokens = torch.tensor([prime], device=cfg.device)
    generated = module.model.sample(tokens, cfg.length, cfg.temperature, cfg.top_k, generator)
    return cfg.prime + decode(generated[0].tolist(), vocab)


USAGE = __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.strip())
        return
    try:
        cfg = parse_args(argv)
        text = sample(cfg)
    except SampleError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(text)


if __name__ == "__main__":
    main()

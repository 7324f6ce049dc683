"""Sample text from a language-model checkpoint (``task=enwik8`` or ``task=text``).

    python -m gridlstm.sample ckpt_path=outputs/.../checkpoints/last.ckpt prime="The " \\
        length=500 temperature=0.8 top_k=20 seed=1    (or: gridlstm-sample ...)

Checkpoints carry the vocabulary and the model config, so nothing else is needed. The same
seed gives the same text; ``temperature=0`` is greedy decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.config import check_device
from gridlstm.run.errors import ConfigError


@dataclass
class SampleConfig:
    ckpt_path: str = option("", "a checkpoint of a task=enwik8 or task=text run")
    prime: str = option("\n", "text the sample continues")
    length: int = option(500, "characters to sample")
    temperature: float = option(1.0, "0: greedy")
    top_k: int | None = option(None, "sample among the k likeliest characters (null: all)")
    seed: int = option(0, "the same seed gives the same text")
    device: str = option("cpu", "cpu, cuda or cuda:N")


MAX_LENGTH = 10_000_000  # characters per call: the model samples one at a time


class SampleError(ConfigError):
    """A bad argument or checkpoint; the message is one line for the user."""


def parse(argv: list[str]) -> SampleConfig:
    """``key=value`` arguments (`gridlstm.run.arguments`), checked before any work."""
    cfg, _ = arguments.parse(argv, SampleConfig, aliases={"ckpt": "ckpt_path"})
    if not cfg.ckpt_path:
        raise SampleError("no checkpoint given: ckpt_path=path/to/last.ckpt")
    if not 1 <= cfg.length <= MAX_LENGTH:
        raise SampleError(f"length must be in [1, {MAX_LENGTH:,}], got {cfg.length}")
    if not (math.isfinite(cfg.temperature) and cfg.temperature >= 0):
        raise SampleError(f"temperature must be >= 0 (0: greedy), got {cfg.temperature}")
    if cfg.top_k is not None and cfg.top_k < 1:
        raise SampleError(f"top_k must be >= 1 or null, got {cfg.top_k}")
    if not cfg.prime:
        raise SampleError("prime must hold at least one character")
    check_device(cfg.device)
    return cfg


def sample(cfg: SampleConfig) -> str:
    """The prime followed by ``cfg.length`` sampled characters."""
    from gridlstm.run.inference import sample_text

    try:
        return sample_text(
            cfg.ckpt_path, cfg.prime, cfg.length, cfg.temperature, cfg.top_k, cfg.seed, cfg.device
        )
    except ConfigError as error:
        raise SampleError(str(error)) from None


def run(argv: list[str]) -> str:
    return sample(parse(argv))


def main(argv: list[str] | None = None) -> None:
    text = arguments.run_command(argv, __doc__, SampleConfig, run)
    if text is not None:
        print(text)


if __name__ == "__main__":
    main()

"""Translate a file with a translation checkpoint (``task=translation``).

    python -m gridlstm.translate ckpt_path=outputs/.../checkpoints/best-step1000.ckpt \\
        input=source.zh [output=out.en] [reference=ref.en] [beam=4] [length_penalty=1.0] \\
        [batch_size=64] [device=cpu]

One source sentence per line in (UTF-8), one translation per line out (to ``output``, else to
standard output). With ``reference`` the corpus BLEU (sacrebleu, the target language's
standard tokenizer) and chrF are printed too. The checkpoint carries the tokenizers and the
model config; only the suite's own translation models are rebuilt from it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from gridlstm.data.files import write_atomic
from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.config import check_device, check_writable
from gridlstm.run.errors import ConfigError


@dataclass
class TranslateConfig:
    ckpt_path: str = option("", "a checkpoint of a task=translation run")
    input: str = option("", "source sentences, one per line (UTF-8)")
    output: str | None = option(None, "write the translations here (default: stdout)")
    reference: str | None = option(None, "reference translations: print BLEU and chrF")
    beam: int = option(4, "beam width (1: greedy)")
    length_penalty: float = option(1.0, "GNMT length penalty exponent")
    batch_size: int = option(64, "sentences decoded together")
    device: str = option("cpu", "cpu, cuda or cuda:N")


class TranslateError(ConfigError):
    """A bad argument, file or checkpoint; the message is one line for the user."""


def parse(argv: list[str]) -> TranslateConfig:
    """``key=value`` arguments (`gridlstm.run.arguments`), checked before any work."""
    cfg, _ = arguments.parse(argv, TranslateConfig, aliases={"ckpt": "ckpt_path"})
    if not cfg.ckpt_path:
        raise TranslateError("no checkpoint given: ckpt_path=path/to/best.ckpt")
    if not cfg.input:
        raise TranslateError("no input given: input=FILE (one source sentence per line)")
    if cfg.beam < 1:
        raise TranslateError(f"beam must be >= 1, got {cfg.beam}")
    if cfg.batch_size < 1:
        raise TranslateError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not math.isfinite(cfg.length_penalty):
        raise TranslateError(f"length_penalty must be a finite number, got {cfg.length_penalty}")
    check_device(cfg.device)
    if cfg.output:
        check_writable(Path(cfg.output), "output", file=True)
        if Path(cfg.output).resolve() == Path(cfg.input).resolve():
            raise TranslateError("output would overwrite the input file; choose another output")
    return cfg


def read_lines(path: str, what: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise TranslateError(f"{what} file {path!r} does not exist")
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise TranslateError(
            f"{what} file {path!r} is not UTF-8 ({error.reason} at byte {error.start})"
        ) from None


def run(argv: list[str]) -> None:
    """Translate ``input`` to ``output`` (or stdout), scores to the other."""
    from gridlstm.run.inference import translate_lines

    cfg = parse(argv)
    sentences = read_lines(cfg.input, "input")
    references = read_lines(cfg.reference, "reference") if cfg.reference else None
    try:
        hypotheses, scores = translate_lines(
            cfg.ckpt_path,
            sentences,
            references,
            beam=cfg.beam,
            length_penalty=cfg.length_penalty,
            batch_size=cfg.batch_size,
            device=cfg.device,
        )
    except ConfigError as error:
        raise TranslateError(str(error)) from None
    text = "".join(f"{line}\n" for line in hypotheses)
    if cfg.output:
        write_atomic(Path(cfg.output), text)  # never a half-written output file
    else:
        sys.stdout.write(text)
    if scores:
        stream = sys.stdout if cfg.output else sys.stderr
        print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}", file=stream)


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, TranslateConfig, run)


if __name__ == "__main__":
    main()

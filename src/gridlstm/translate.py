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

import torch

from gridlstm.data.files import partial_file
from gridlstm.data.translation import tokens_to_tensor
from gridlstm.run import arguments, checkpoints
from gridlstm.run.arguments import option
from gridlstm.run.config import ConfigError, check_device, check_writable
from gridlstm.tasks.translation import TASK, TranslationModule, score


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


def parse_args(argv: list[str]) -> TranslateConfig:
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


def load_model(path: str | Path, device: str = "cpu") -> TranslationModule:
    """The translation model in a checkpoint written by ``train.py`` (task=translation),
    opened through `gridlstm.run.checkpoints` (weights and plain data only; suite classes only)."""
    not_translation = (
        f"{path} is not a translation checkpoint; use one from a run with task=translation"
    )
    try:
        module = checkpoints.load_module(path, TASK, TranslationModule, not_translation)
    except checkpoints.CheckpointError as error:
        raise TranslateError(str(error)) from None
    return module.to(device)


def translate(module: TranslationModule, sentences: list[str], cfg: TranslateConfig) -> list[str]:
    """Translations in input order (batched by source length, which speeds up decoding)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out: list[str] = [""] * len(sentences)
    module.hparams.length_penalty = cfg.length_penalty
    for start in range(0, len(order), cfg.batch_size):
        rows = order[start : start + cfg.batch_size]
        src, lengths = tokens_to_tensor(module.src_tok, [sentences[i] for i in rows])
        with torch.no_grad():
            hyps = module.translate_batch(src.to(cfg.device), lengths.to(cfg.device), cfg.beam)
        for i, hyp in zip(rows, hyps, strict=True):
            out[i] = hyp if sentences[i].strip() else ""
    return out


def run(cfg: TranslateConfig) -> tuple[list[str], dict[str, float] | None]:
    sentences = read_lines(cfg.input, "input")
    references = read_lines(cfg.reference, "reference") if cfg.reference else None
    if references is not None and len(references) != len(sentences):
        raise TranslateError(
            f"reference has {len(references)} lines but input has {len(sentences)}"
        )
    if cfg.output and Path(cfg.output).resolve() in {Path(cfg.input).resolve()}:
        raise TranslateError("output would overwrite the input file; choose another output")
    module = load_model(cfg.ckpt_path, cfg.device)
    hypotheses = translate(module, sentences, cfg)
    scores = score(hypotheses, references, module.hparams.tgt_lang) if references else None
    return hypotheses, scores


def translate_file(argv: list[str]) -> None:
    """The command: translate ``input`` to ``output`` (or stdout), scores to the other."""
    cfg = parse_args(argv)
    hypotheses, scores = run(cfg)
    text = "".join(f"{line}\n" for line in hypotheses)
    if cfg.output:
        target = Path(cfg.output)
        with partial_file(target) as (out, _):  # never a half-written output file
            out.write(text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    if scores:
        stream = sys.stdout if cfg.output else sys.stderr
        print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}", file=stream)


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, TranslateConfig, translate_file)


if __name__ == "__main__":
    main()

"""Using a trained checkpoint outside its run: sample text from a language model, translate
sentences with a translation model (the procedures behind ``python -m gridlstm.sample`` and
``python -m gridlstm.translate``).

Both open the checkpoint through `gridlstm.run.checkpoints.load_module`: weights and plain
data only, the suite's own classes only, the task checked first. The checkpoint carries what
they need besides (the vocabulary; the tokenizers and the model config).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gridlstm.data.text import decode, encode
from gridlstm.data.translation import tokens_to_tensor
from gridlstm.run import checkpoints
from gridlstm.run.errors import ConfigError
from gridlstm.tasks import language_model, translation
from gridlstm.tasks.language_model import LanguageModelModule
from gridlstm.tasks.translation import TranslationModule, score


def load_language_model(path: str | Path, device: str = "cpu") -> LanguageModelModule:
    """The language model in a checkpoint of ``task=enwik8`` or ``task=text`` (its backbone
    must be a sequence model: `gridlstm.nn.TokenSequenceModel`'s rule)."""
    not_a_language_model = (
        f"{path} is not a language-model checkpoint (it has no vocabulary to sample from); "
        "use one from a run with task=enwik8 or task=text"
    )
    module = checkpoints.load_module(
        path, language_model.TASK, LanguageModelModule, not_a_language_model
    )
    return module.to(device)


def sample_text(
    path: str | Path,
    prime: str,
    length: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    device: str = "cpu",
) -> str:
    """``prime`` followed by ``length`` sampled characters (the same seed, the same text)."""
    module = load_language_model(path, device)
    vocab = module.hparams.vocab
    try:
        tokens = encode(prime, vocab)
    except ValueError as error:
        raise ConfigError(f"prime: {error}") from None
    generator = torch.Generator(device).manual_seed(seed)
    prompt = torch.tensor([tokens], device=device)
    generated = module.model.sample(prompt, length, temperature, top_k, generator)
    return prime + decode(generated[0].tolist(), vocab)


def load_translation_model(path: str | Path, device: str = "cpu") -> TranslationModule:
    """The translation model in a checkpoint of ``task=translation``."""
    not_translation = (
        f"{path} is not a translation checkpoint; use one from a run with task=translation"
    )
    module = checkpoints.load_module(path, translation.TASK, TranslationModule, not_translation)
    return module.to(device)


def translate(
    module: TranslationModule,
    sentences: list[str],
    beam: int,
    length_penalty: float,
    batch_size: int,
    device: str = "cpu",
) -> list[str]:
    """Translations in input order (batched by source length, which speeds up decoding)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out: list[str] = [""] * len(sentences)
    module.hparams.length_penalty = length_penalty
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        src, lengths = tokens_to_tensor(module.src_tok, [sentences[i] for i in rows])
        with torch.no_grad():
            hyps = module.translate_batch(src.to(device), lengths.to(device), beam)
        for i, hyp in zip(rows, hyps, strict=True):
            out[i] = hyp if sentences[i].strip() else ""
    return out


def translate_lines(
    path: str | Path,
    sentences: list[str],
    references: list[str] | None,
    *,
    beam: int,
    length_penalty: float,
    batch_size: int,
    device: str = "cpu",
) -> tuple[list[str], dict[str, float] | None]:
    """The translations, and corpus BLEU and chrF against ``references`` when given."""
    if references is not None and len(references) != len(sentences):
        raise ConfigError(f"reference has {len(references)} lines but input has {len(sentences)}")
    module = load_translation_model(path, device)
    hypotheses = translate(module, sentences, beam, length_penalty, batch_size, device)
    scores = score(hypotheses, references, module.hparams.tgt_lang) if references else None
    return hypotheses, scores

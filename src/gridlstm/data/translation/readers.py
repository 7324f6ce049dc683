"""Reading sentence pairs: TSV, aligned text files, JSON lines / parquet, and the split.

Three on-disk formats, one list of (source, target) pairs:

* ``tsv``: one pair per line, tab-separated columns named by ``columns`` (the Tatoeba /
  ManyThings export is ``English<TAB>Mandarin<TAB>attribution``: ``columns=[en, zh]``; one
  extra trailing column, the attribution, is allowed and ignored);
* ``text``: aligned plain-text files ``PATH.<src>`` and ``PATH.<tgt>``, one sentence per line
  (as Moses / IWSLT ship them: ``train.zh`` + ``train.en`` for ``path=.../train``);
* ``jsonl`` / ``parquet``: read by Hugging Face ``datasets`` with the hub's ``translation``
  column (``{"translation": {"zh": ..., "en": ...}}``).

Splits are either given (``val_path`` / ``test_path``) or a seeded shuffle of one file
(``split_seed``, independent of the training seed; the Tatoeba file is sorted by length, so
never split by position).
"""

from __future__ import annotations

import random
from pathlib import Path

from gridlstm.data.files import hf_load_dataset
from gridlstm.nn.checks import check_choice

FORMATS = ("auto", "tsv", "text", "jsonl", "parquet")
Pair = tuple[str, str]


class DataError(ValueError):
    """A bad data file or option; the message names the file (and line) for the user."""


# ---------------------------------------------------------------------------- reading
def infer_format(path: Path, src: str, tgt: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if not path.exists() and Path(f"{path}.{src}").exists() and Path(f"{path}.{tgt}").exists():
        return "text"
    return "tsv"


def read_tsv(path: Path, columns: list[str], src: str, tgt: str) -> list[Pair]:
    for lang in (src, tgt):
        if lang not in columns:
            raise DataError(
                f"language {lang!r} is not a column of {path} (columns: {', '.join(columns)}); "
                "set task.datamodule.columns to the file's languages or choose src/tgt from them"
            )
    i, j = columns.index(src), columns.index(tgt)
    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) not in (len(columns), len(columns) + 1):
            raise DataError(
                f"{path} line {number}: {len(fields)} tab-separated columns, expected "
                f"{len(columns)} ({', '.join(columns)}) or {len(columns) + 1} (with attribution)"
            )
        pairs.append(check_pair(fields[i], fields[j], f"{path} line {number}", src, tgt))
    return pairs


def read_text_pair(prefix: Path, src: str, tgt: str) -> list[Pair]:
    paths = {lang: Path(f"{prefix}.{lang}") for lang in (src, tgt)}
    for path in paths.values():
        if not path.is_file():
            siblings = sorted(p.suffix[1:] for p in prefix.parent.glob(f"{prefix.name}.*"))
            raise DataError(
                f"{path} does not exist (aligned text files need {prefix}.{src} and "
                f"{prefix}.{tgt}; languages found: {', '.join(siblings) or 'none'})"
            )
    sources, targets = read_lines(paths[src]), read_lines(paths[tgt])
    if len(sources) != len(targets):
        raise DataError(
            f"{paths[src]} has {len(sources)} lines but {paths[tgt]} has {len(targets)}; "
            "aligned files need one sentence per line on both sides"
        )
    return [
        check_pair(s, t, f"{paths[src]} / {paths[tgt]} line {n}", src, tgt)
        for n, (s, t) in enumerate(zip(sources, targets, strict=True), start=1)
    ]


def read_hf(path: Path, kind: str, src: str, tgt: str) -> list[Pair]:
    """JSON-lines or parquet through Hugging Face ``datasets`` (local files, no download)."""
    load_dataset = hf_load_dataset()

    try:
        data = load_dataset("json" if kind == "jsonl" else kind, data_files=str(path))["train"]
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: not readable as {kind} ({first})") from None
    if "translation" not in data.column_names:
        raise DataError(
            f"{path}: no 'translation' column (columns: {', '.join(data.column_names)}); rows "
            f'must look like {{"translation": {{"{src}": ..., "{tgt}": ...}}}}'
        )
    pairs = []
    for number, row in enumerate(data["translation"], start=1):
        row = row or {}
        present = sorted(k for k, v in row.items() if v is not None)
        for lang in (src, tgt):
            if row.get(lang) is None:
                raise DataError(
                    f"{path} row {number}: no {lang!r} in its translation "
                    f"(languages: {', '.join(present) or 'none'})"
                )
        pairs.append(check_pair(row[src], row[tgt], f"{path} row {number}", src, tgt))
    return pairs


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 ({error.reason} at byte {error.start})") from None
    return text.splitlines()


def check_pair(source: str, target: str, where: str, src: str, tgt: str) -> Pair:
    source, target = source.strip(), target.strip()
    for lang, text in ((src, source), (tgt, target)):
        if not text:
            raise DataError(f"{where}: the {lang} side is empty")
    return source, target


def read_pairs(
    path: str | Path, src: str, tgt: str, fmt: str = "auto", columns: list[str] | None = None
) -> list[Pair]:
    """(source, target) pairs of one file (or aligned file pair) in any supported format."""
    check_choice("format", fmt, FORMATS)
    path = Path(path).expanduser()
    kind = infer_format(path, src, tgt) if fmt == "auto" else fmt
    if kind == "text":
        pairs = read_text_pair(path, src, tgt)
    elif kind == "tsv":
        if not path.is_file():
            raise DataError(f"{path} does not exist (or is not a file)")
        pairs = read_tsv(path, list(columns or ["en", "zh"]), src, tgt)
    else:
        if not path.is_file():
            raise DataError(f"{path} does not exist (or is not a file)")
        pairs = read_hf(path, kind, src, tgt)
    if not pairs:
        raise DataError(f"{path} holds no sentence pairs")
    return pairs


def shuffle_split(pairs: list[Pair], val_size: int, test_size: int, seed: int) -> dict:
    """Seeded shuffle into train / val / test (the order of the file plays no part)."""
    if val_size + test_size >= len(pairs):
        raise DataError(
            f"val_size + test_size = {val_size + test_size} leaves no training pairs of "
            f"{len(pairs)}; lower them or give val_path / test_path"
        )
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    val = [pairs[i] for i in order[:val_size]]
    test = [pairs[i] for i in order[val_size : val_size + test_size]]
    train = [pairs[i] for i in order[val_size + test_size :]]
    return {"train": train, "val": val, "test": test}

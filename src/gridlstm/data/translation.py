"""Sentence-pair translation data (``task=translation``).

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
never split by position). Sentences are tokenised by byte-level BPE (Hugging Face
``tokenizers``), one tokenizer per side trained on the training split only; byte-level BPE
round-trips any text exactly, so BLEU is computed on the real detokenised output. Training
pairs longer than ``max_len`` tokens on either side are dropped (and counted); validation and
test are never filtered.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from gridlstm.data.files import hf_load_dataset
from gridlstm.data.position import ResumableLoader, epoch_of, resumable
from gridlstm.data.synthetic import rank_and_world
from gridlstm.nn.checks import check_choice, check_positive

log = logging.getLogger(__name__)

FORMATS = ("auto", "tsv", "text", "jsonl", "parquet")
SPECIALS = ("<pad>", "<s>", "</s>")
PAD, BOS, EOS = 0, 1, 2
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
    except Exception as error:  # noqa: BLE001 - any unreadable file gets one line
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


# ---------------------------------------------------------------------------- tokenizers
def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (lossless: decode(encode(s)) == s) with <pad>, <s>, </s> as ids 0-2."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Token ids -> text, stopping at </s> and skipping <pad>/<s>."""
    kept = []
    for i in ids:
        if i == EOS:
            break
        if i > EOS:
            kept.append(i)
    return tokenizer.decode(kept, skip_special_tokens=True).strip()


# ---------------------------------------------------------------------------- batches
class PairDataset(Dataset):
    """Token ids of both sides plus the raw reference (BLEU scores raw text)."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]], refs: list[str]):
        self.sources, self.targets, self.refs = sources, targets, refs

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[list[int], list[int], str, int]:
        return self.sources[index], self.targets[index], self.refs[index], index


def collate(items: list[tuple[list[int], list[int], str, int]]) -> dict[str, Any]:
    """Right-padded source; decoder input <s> y and output y </s>; references and indices."""
    batch = len(items)
    src_len = torch.tensor([len(s) for s, *_ in items])
    tgt_len = torch.tensor([len(t) + 1 for _, t, *_ in items])
    src = torch.full((batch, int(src_len.max())), PAD, dtype=torch.long)
    tgt_in = torch.full((batch, int(tgt_len.max())), PAD, dtype=torch.long)
    tgt_out = torch.full_like(tgt_in, PAD)
    for row, (s, t, _, _) in enumerate(items):
        src[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        tgt_in[row, : len(t) + 1] = torch.tensor([BOS, *t], dtype=torch.long)
        tgt_out[row, : len(t) + 1] = torch.tensor([*t, EOS], dtype=torch.long)
    return {
        "src": src,
        "src_lengths": src_len,
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "refs": [r for *_, r, _ in items],
        "index": torch.tensor([i for *_, i in items]),
    }


class BucketSampler(Sampler[list[int]]):
    """Shuffled batches of similar lengths: the Reencoder's cost grows with source x target
    length, so padding a short pair to a long one wastes a whole rectangle. Pools of
    ``pool`` batches are sorted by length and cut into batches; batch order is shuffled.
    Each epoch draws a new order from (seed, epoch); each rank takes every world-th batch."""

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        pool: int = 50,
        epoch: Callable[[int], int] | None = None,
    ):
        self.lengths, self.batch_size, self.seed, self.pool = lengths, batch_size, seed, pool
        self.passes = 0
        self.epoch_of = epoch  # the trainer's epoch (given this sampler's pass count)
        self.rank, self.world = rank_and_world()

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world  # equal counts on every rank
        return batches[self.rank : usable : self.world]

    def __iter__(self):  # noqa: ANN204
        epoch = self.passes if self.epoch_of is None else self.epoch_of(self.passes)
        self.passes += 1
        return iter(self.batches(epoch))

    def __len__(self) -> int:
        full = -(-len(self.lengths) // self.batch_size)
        return full // self.world


class TranslationDataModule(L.LightningDataModule):
    """Sentence pairs for translation.

    Args:
        path: the pairs (a TSV file, a JSON-lines / parquet file, or the prefix of aligned
            text files ``PATH.<src>`` / ``PATH.<tgt>``); split by a seeded shuffle unless
            ``val_path`` and ``test_path`` are given.
        src, tgt: language codes (default zh -> en, the paper's direction).
        format: ``auto`` (by suffix) | ``tsv`` | ``text`` | ``jsonl`` | ``parquet``.
        columns: languages of the TSV columns, in order.
        val_size, test_size: pairs held out by the shuffle; split_seed: its seed (not the
            training seed: the split never moves with it).
        src_vocab_size, tgt_vocab_size: BPE vocabulary sizes (trained on the train split).
        max_len: training pairs with more tokens on either side are dropped (counted).
        batch_size: training pairs per batch per process; eval_batch_size: per eval batch.
        tokenizers: the (source, target) tokenizers as JSON text, used instead of training
            new ones: a re-score must encode with the ids the model was trained on
            (``gridlstm.evaluate`` passes the checkpoint's).
    """

    # Options a re-score of a trained model may not change (``gridlstm.evaluate``), and why.
    FIXED_AFTER_TRAINING = {
        "split_seed": "it chose the pairs the model trained on; another split tests on them",
        "val_size": "it drew the split the model trained on; another size tests on its pairs",
        "test_size": "it drew the split the model trained on; another size tests on its pairs",
        "src_vocab_size": "the checkpoint's tokenizers are used as they are",
        "tgt_vocab_size": "the checkpoint's tokenizers are used as they are",
        "src": "the model translates the languages it was trained on",
        "tgt": "the model translates the languages it was trained on",
    }

    def __init__(
        self,
        path: str | Path | None = None,
        src: str = "zh",
        tgt: str = "en",
        format: str = "auto",
        columns: list[str] | tuple[str, ...] = ("en", "zh"),
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        val_size: int = 1000,
        test_size: int = 1000,
        split_seed: int = 0,
        src_vocab_size: int = 4000,
        tgt_vocab_size: int = 4000,
        max_len: int = 50,
        batch_size: int = 64,
        eval_batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        tokenizers: list[str] | tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        if path is None or str(path) == "":
            raise DataError("no data given: set task.path=/path/to/pairs (tsv, jsonl, parquet)")
        if tokenizers is not None and len(tokenizers) != 2:
            raise DataError(f"tokenizers: give (source, target), got {len(tokenizers)}")
        if src == tgt:
            raise DataError(f"src and tgt are both {src!r}; translate between two languages")
        if max_len < 2:
            raise DataError(f"max_len must be >= 2 tokens, got {max_len}")
        for name, value in (
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
            ("src_vocab_size", src_vocab_size),
            ("tgt_vocab_size", tgt_vocab_size),
        ):
            check_positive(name, value)
        for name, value in (("val_size", val_size), ("test_size", test_size)):
            if value < 1:
                raise DataError(f"{name} must be >= 1, got {value}")
        if (val_path is None) != (test_path is None):
            raise DataError("give both val_path and test_path, or neither (seeded split)")
        self.src, self.tgt, self.max_len = src, tgt, max_len
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed

        def read(p: str | Path) -> list[Pair]:
            return read_pairs(p, src, tgt, format, list(columns))

        if val_path is None:
            self.pairs = shuffle_split(read(path), val_size, test_size, split_seed)
        else:
            self.pairs = {"train": read(path), "val": read(val_path), "test": read(test_path)}
        train = self.pairs["train"]
        if tokenizers is None:
            self.src_tokenizer = train_tokenizer([s for s, _ in train], src_vocab_size)
            self.tgt_tokenizer = train_tokenizer([t for _, t in train], tgt_vocab_size)
        else:
            self.src_tokenizer, self.tgt_tokenizer = (Tokenizer.from_str(t) for t in tokenizers)
        self.datasets = {name: self._encode(name) for name in ("train", "val", "test")}
        if len(self.datasets["train"]) == 0:
            raise DataError(
                f"max_len={max_len} drops every training pair; raise task.datamodule.max_len"
            )

    def _encode(self, split: str) -> PairDataset:
        pairs = self.pairs[split]
        sources = encode(self.src_tokenizer, [s for s, _ in pairs])
        targets = encode(self.tgt_tokenizer, [t for _, t in pairs])
        refs = [t for _, t in pairs]
        if split == "train":
            keep = [
                i
                for i, (s, t) in enumerate(zip(sources, targets, strict=True))
                if len(s) <= self.max_len and len(t) <= self.max_len
            ]
            dropped = len(pairs) - len(keep)
            self.dropped = dropped
            log.info(
                "translation: %d training pairs, %d dropped as longer than max_len=%d tokens",
                len(keep), dropped, self.max_len,
            )  # fmt: skip
            sources = [sources[i] for i in keep]
            targets = [targets[i] for i in keep]
            refs = [refs[i] for i in keep]
        return PairDataset(sources, targets, refs)

    @property
    def vocab_sizes(self) -> tuple[int, int]:
        return self.src_tokenizer.get_vocab_size(), self.tgt_tokenizer.get_vocab_size()

    @staticmethod
    def stored_options(module_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The constructor options that rebuild this data as a trained model saw it, from
        what `module_kwargs` gave the model (its checkpoint's hyper-parameters)."""
        return {"tokenizers": [module_kwargs["src_tokenizer"], module_kwargs["tgt_tokenizer"]]}

    def module_kwargs(self) -> dict[str, Any]:
        """What the translation module needs from the data (and stores in checkpoints)."""
        return {
            "src_vocab_size": self.vocab_sizes[0],
            "tgt_vocab_size": self.vocab_sizes[1],
            "src_tokenizer": self.src_tokenizer.to_str(),
            "tgt_tokenizer": self.tgt_tokenizer.to_str(),
            "src_lang": self.src,
            "tgt_lang": self.tgt,
        }

    def train_dataloader(self) -> DataLoader:
        data = self.datasets["train"]
        lengths = [len(s) * (len(t) + 1) for s, t in zip(data.sources, data.targets, strict=True)]
        sampler = BucketSampler(
            lengths, self.batch_size, self.seed, epoch=lambda passes: epoch_of(self, passes)
        )
        loader = ResumableLoader(
            data, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers
        )
        return resumable(loader, self)

    def _eval_loader(self, split: str) -> DataLoader:
        """Every pair once; ranks take disjoint slices (no padding duplicates)."""
        rank, world = rank_and_world()
        data = self.datasets[split]
        mine = list(range(rank, len(data), world))
        # Sorted by source length: less padding, and decoding stops sooner.
        mine.sort(key=lambda i: len(data.sources[i]))
        batches = [
            mine[i : i + self.eval_batch_size] for i in range(0, len(mine), self.eval_batch_size)
        ]
        return DataLoader(data, batch_sampler=batches, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def tokens_to_tensor(tokenizer: Tokenizer, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Right-padded ids and lengths of source sentences (for decoding new text)."""
    ids = [ids or [EOS] for ids in encode(tokenizer, texts)]  # an empty line reads as </s>
    lengths = torch.tensor([len(i) for i in ids])
    out = torch.full((len(ids), int(lengths.max())), PAD, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq)
    return out, lengths

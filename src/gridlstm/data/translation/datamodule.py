"""The translation LightningDataModule (``task=translation``): read, split, tokenise, batch.

Training pairs longer than ``max_len`` tokens on either side are dropped (and counted);
validation and test are never filtered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from gridlstm.data.contracts import SentencePairs
from gridlstm.data.position import ResumableLoader, epoch_of, resumable
from gridlstm.data.shards import rank_and_world
from gridlstm.data.translation.batching import BucketSampler, PairDataset, collate
from gridlstm.data.translation.readers import DataError, Pair, read_pairs, shuffle_split
from gridlstm.data.translation.tokenizers import encode, train_tokenizer
from gridlstm.nn.checks import check_positive

log = logging.getLogger(__name__)


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

    shapes_vary = "sentence pairs are batched by length, so batch shapes vary"

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
                len(keep),
                dropped,
                self.max_len,
            )
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

    def module_kwargs(self) -> SentencePairs:
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

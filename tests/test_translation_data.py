"""Translation data: every on-disk format, seeded splits that ignore the training seed,
lossless tokenisation, max_len filtering, and one clear line for every bad file."""

from __future__ import annotations

import json

import pytest

from gridlstm.data.translation import (
    DataError,
    TranslationDataModule,
    collate,
    decode,
    encode,
    read_pairs,
    train_tokenizer,
)
from tests.conftest import toy_pairs, write_pairs

SMALL = dict(val_size=5, test_size=5, src_vocab_size=280, tgt_vocab_size=280)


def write_formats(tmp_path, pairs):
    """The same pairs as TSV, aligned text files, JSON lines and parquet."""
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{en}\t{zh}\tCC-BY #{i}\n" for i, (zh, en) in enumerate(pairs)))
    (tmp_path / "train.zh").write_text("".join(f"{zh}\n" for zh, _ in pairs))
    (tmp_path / "train.en").write_text("".join(f"{en}\n" for _, en in pairs))
    rows = [{"translation": {"zh": zh, "en": en}} for zh, en in pairs]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    from datasets import Dataset

    parquet = tmp_path / "pairs.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    return {"tsv": tsv, "text": tmp_path / "train", "jsonl": jsonl, "parquet": parquet}


def test_every_format_reads_the_same_pairs_in_both_directions(tmp_path):
    pairs = toy_pairs(12)
    for kind, path in write_formats(tmp_path, pairs).items():
        assert read_pairs(path, "zh", "en") == pairs, kind  # format inferred
        assert read_pairs(path, "zh", "en", fmt=kind) == pairs, kind
        assert read_pairs(path, "en", "zh") == [(en, zh) for zh, en in pairs], kind


def test_split_is_seeded_disjoint_not_positional_and_ignores_the_training_seed(tmp_path):
    path = write_pairs(tmp_path / "pairs.txt", 80)
    a = TranslationDataModule(path, seed=1, **SMALL)
    b = TranslationDataModule(path, seed=2, **SMALL)
    assert a.pairs == b.pairs  # the training seed moves only the batch order
    sizes = {name: len(split) for name, split in a.pairs.items()}
    assert sizes == {"train": 70, "val": 5, "test": 5}
    lines = read_pairs(path, "zh", "en")
    assert a.pairs["val"] != lines[:5] and a.pairs["test"] != lines[5:10]
    other = TranslationDataModule(path, split_seed=7, **SMALL)
    assert other.pairs["val"] != a.pairs["val"]
    # Disjoint by position in the file (the toy file repeats sentences, so count indices).
    assert sorted(a.pairs["train"] + a.pairs["val"] + a.pairs["test"]) == sorted(lines)
    orders = [list(iter(dm.train_dataloader().batch_sampler)) for dm in (a, b)]
    assert orders[0] != orders[1]


def test_given_split_files_are_used_as_they_are(tmp_path):
    train = write_pairs(tmp_path / "train.tsv", 30, seed=0)
    dev = write_pairs(tmp_path / "dev.tsv", 7, seed=1)
    test = write_pairs(tmp_path / "test.tsv", 4, seed=2)
    dm = TranslationDataModule(train, val_path=dev, test_path=test, **SMALL)
    assert [len(dm.pairs[s]) for s in ("train", "val", "test")] == [30, 7, 4]
    assert dm.pairs["val"] == read_pairs(dev, "zh", "en")


def test_byte_level_bpe_round_trips_any_text():
    texts = ["I'm up.", "我已经起来了。", "  two  spaces ", "Ünïcödé 😀 tabs\tand more"]
    tokenizer = train_tokenizer(texts * 3, 300)
    for text, ids in zip(texts, encode(tokenizer, texts), strict=True):
        assert all(i > 2 for i in ids)  # specials are never produced by the text
        assert decode(tokenizer, ids) == text.strip()
        assert decode(tokenizer, ids + [2, 5, 6]) == text.strip()  # stops at </s>


def test_max_len_drops_long_training_pairs_and_never_filters_dev_or_test(tmp_path):
    pairs = toy_pairs(40) + [("猫" * 60, "cats " * 40)] * 5
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{en}\t{zh}\n" for zh, en in pairs))
    dm = TranslationDataModule(
        path, max_len=12, val_size=10, test_size=10, src_vocab_size=260, tgt_vocab_size=260
    )
    sources = encode(dm.src_tokenizer, [p[0] for p in dm.pairs["train"]])
    targets = encode(dm.tgt_tokenizer, [p[1] for p in dm.pairs["train"]])
    long = [len(s) > 12 or len(t) > 12 for s, t in zip(sources, targets, strict=True)]
    assert dm.dropped == sum(long)
    assert dm.dropped > 0
    assert len(dm.datasets["train"]) == len(dm.pairs["train"]) - dm.dropped
    assert len(dm.datasets["val"]) == 10 and len(dm.datasets["test"]) == 10


def test_batches_pad_and_shift_the_target():
    batch = collate([([5, 6, 7], [8, 9], "ab", 0), ([5], [8, 9, 10], "abc", 1)])
    assert batch["src"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["src_lengths"].tolist() == [3, 1]
    assert batch["tgt_in"].tolist() == [[1, 8, 9, 0], [1, 8, 9, 10]]
    assert batch["tgt_out"].tolist() == [[8, 9, 2, 0], [8, 9, 10, 2]]
    assert batch["refs"] == ["ab", "abc"]


def test_evaluation_covers_every_pair_once(tmp_path):
    dm = TranslationDataModule(
        write_pairs(tmp_path / "p.tsv", 60), **{**SMALL, "val_size": 13}, eval_batch_size=4
    )
    seen = [i for batch in dm.val_dataloader() for i in batch["index"].tolist()]
    assert sorted(seen) == list(range(13))


def bad_tsv(tmp_path, text: str, name: str = "bad.tsv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda p: p / "missing.tsv", {}, "missing.tsv does not exist"),
        (lambda p: bad_tsv(p, "Hi.\t你好。\nOnly one column\n"), {}, "bad.tsv line 2: 1 tab"),
        (
            lambda p: bad_tsv(p, "Hi.\t你好。\n\t空的。\n"),
            {},
            "bad.tsv line 2: the en side is empty",
        ),
        (lambda p: bad_tsv(p, b"Hi.\t\xff\xfe\n"), {}, "bad.tsv is not UTF-8"),
        (lambda p: write_pairs(p / "ok.tsv", 20), {"src": "fr"}, "language 'fr' is not a column"),
        (lambda p: write_pairs(p / "ok.tsv", 20), {"src": "en", "tgt": "en"}, "both 'en'"),
        (
            lambda p: write_pairs(p / "ok.tsv", 20),
            {"val_size": 10, "test_size": 10},
            "leaves no training pairs",
        ),
        (lambda p: write_pairs(p / "ok.tsv", 20), {"max_len": 1}, "max_len must be >= 2"),
        (lambda p: write_pairs(p / "ok.tsv", 20), {"max_len": 2}, "drops every training pair"),
        (lambda p: bad_tsv(p, ""), {}, "holds no sentence pairs"),
        (lambda p: write_pairs(p / "ok.tsv", 20), {"val_path": "x"}, "both val_path and test_path"),
        (lambda p: p / "nothing", {"format": "text"}, "nothing.zh does not exist"),
    ],
)
def test_bad_data_gives_one_line_naming_the_problem(tmp_path, make, options, message):
    with pytest.raises(DataError) as error:
        TranslationDataModule(make(tmp_path), **{**SMALL, "val_size": 2, "test_size": 2, **options})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_hugging_face_files_without_the_language_or_column_are_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"translation": {"zh": "你好。", "fr": "Salut."}}) + "\n")
    with pytest.raises(DataError, match="row 1: no 'en' in its translation"):
        read_pairs(path, "zh", "en")
    path.write_text(json.dumps({"text": "你好。"}) + "\n")
    with pytest.raises(DataError, match="no 'translation' column"):
        read_pairs(path, "zh", "en")


def test_aligned_files_of_different_lengths_are_refused(tmp_path):
    (tmp_path / "train.zh").write_text("你好。\n再见。\n")
    (tmp_path / "train.en").write_text("Hello.\n")
    with pytest.raises(DataError, match="has 2 lines but .*train.en has 1"):
        read_pairs(tmp_path / "train", "zh", "en")

"""Text and enwik8 data: contiguous splits, truncated-BPTT streams, whole-split evaluation
windows, the verified enwik8 download, and one-line errors for bad files and settings."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from gridlstm.data import Enwik8DataModule, TextDataModule
from gridlstm.data.text import IGNORE, EvalWindows, TrainWindows, decode, encode
from tests.conftest import md5_of, write_corpus


def visible(directory: Path) -> list[str]:
    """Files left in ``directory``, without hidden lock files."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def random_bytes(path: Path, size: int, seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


# ---------------------------------------------------------------------------- splits
def test_byte_splits_are_contiguous_with_the_given_fractions(tmp_path):
    data = random_bytes(tmp_path / "corpus.bin", 1000)
    dm = TextDataModule(tmp_path / "corpus.bin", split=[0.7, 0.2, 0.1], bptt=5, batch_size=3)
    assert dm.bounds == {"train": (0, 700), "val": (700, 900), "test": (900, 1000)}
    assert bytes(dm.split_tokens("val")) == data[700:900]
    assert isinstance(dm.tokens, np.memmap) and dm.vocab_size == 256


def test_enwik8_split_is_90_5_5_of_the_file(tmp_path):
    data = random_bytes(tmp_path / "enwik8", 20_000)
    dm = Enwik8DataModule(data_dir=tmp_path, md5=md5_of(tmp_path / "enwik8"), download=False)
    assert dm.bounds == {"train": (0, 18_000), "val": (18_000, 19_000), "test": (19_000, 20_000)}
    assert bytes(dm.split_tokens("test")) == data[19_000:]


def test_char_vocabulary_is_the_files_characters(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Grüße, 格子 LSTM! " * 40, encoding="utf-8")
    dm = TextDataModule(path, vocab="char", bptt=4, batch_size=2)
    assert dm.vocab == sorted(set("Grüße, 格子 LSTM! "))
    assert dm.decode(dm.tokens[:9].tolist()) == "Grüße, 格子"
    assert encode("格子", dm.vocab) == [dm.vocab.index("格"), dm.vocab.index("子")]
    with pytest.raises(ValueError, match=r"characters 'xz' are not in the model's vocabulary"):
        encode("xzG", dm.vocab)
    assert decode(list("hé".encode()), None) == "hé"


# ---------------------------------------------------------------------------- BPTT streams
@pytest.mark.parametrize("world", [1, 2])
def test_training_batches_continue_each_stream_and_ranks_read_disjoint_streams(world):
    tokens = np.arange(1000) % 251
    rows, bptt = 3, 7
    length = 999 // (rows * world)
    seen = []
    for rank in range(world):
        windows = TrainWindows(tokens, rows, bptt, rank, world)
        assert len(windows) == length // bptt
        batches = [windows[i] for i in range(len(windows))]
        for batch in batches:
            assert batch.shape == (rows, bptt + 1)
        for row in range(rows):
            stream = rank * rows + row
            # Consecutive windows overlap by one token: the last target is the next input.
            read = [batches[0][row, 0].item()] + [t for b in batches for t in b[row, 1:].tolist()]
            start = stream * length
            assert read == tokens[start : start + len(read)].tolist()
            seen.append(stream)
    assert sorted(seen) == list(range(rows * world))


@pytest.mark.parametrize(("size", "rows", "bptt", "world"), [(1000, 4, 9, 1), (101, 9, 4, 2)])
def test_evaluation_windows_score_every_target_of_the_split_once(size, rows, bptt, world):
    tokens = np.random.default_rng(1).integers(0, 256, size)
    per_rank = []
    for rank in range(world):
        windows = EvalWindows(tokens, rows, bptt, rank, world)
        inputs = np.concatenate([windows[i][0].numpy() for i in range(len(windows))], axis=1)
        labels = np.concatenate([windows[i][1].numpy() for i in range(len(windows))], axis=1)
        per_rank.append((inputs, labels))
    assert len({len(EvalWindows(tokens, rows, bptt, r, world)) for r in range(world)}) == 1
    # Streams are dealt round-robin to ranks; put them back in order and read them out.
    streams = [per_rank[s % world][0][s // world] for s in range(sum(len(r[0]) for r in per_rank))]
    labels = [per_rank[s % world][1][s // world] for s in range(len(streams))]
    targets = np.concatenate([lab[lab != IGNORE] for lab in labels])
    inputs = np.concatenate([inp[lab != IGNORE] for inp, lab in zip(streams, labels, strict=True)])
    assert targets.tolist() == tokens[1:].tolist()
    assert inputs.tolist() == tokens[:-1].tolist()


# ---------------------------------------------------------------------------- enwik8 download
def make_zip(path: Path, member: bytes, name: str = "enwik8") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, member)
    return path.resolve().as_uri()


def test_ranks_started_together_download_once(tmp_path, monkeypatch):
    """Ranks that start at the same moment (srun, torchrun) share one download."""
    import threading
    import time

    import gridlstm.data.enwik8 as enwik8

    data = random_bytes(tmp_path / "source" / "member", 5000)
    url = make_zip(tmp_path / "mirror" / "enwik8.zip", data)
    md5 = md5_of(tmp_path / "source" / "member")
    calls = []
    real = enwik8.download

    def slow_download(url: str, archive: Path) -> None:
        calls.append(url)
        time.sleep(0.3)  # long enough for every rank to arrive while it runs
        real(url, archive)

    monkeypatch.setattr(enwik8, "download", slow_download)
    ranks = [
        threading.Thread(
            target=Enwik8DataModule, kwargs=dict(data_dir=tmp_path / "data", url=url, md5=md5)
        )
        for _ in range(3)
    ]
    for rank in ranks:
        rank.start()
    for rank in ranks:
        rank.join()
    assert len(calls) == 1
    assert (tmp_path / "data" / "enwik8").read_bytes() == data


def test_download_extracts_and_verifies_the_official_zip_layout(tmp_path):
    data = random_bytes(tmp_path / "source" / "member", 5000)
    url = make_zip(tmp_path / "mirror" / "enwik8.zip", data)
    md5 = md5_of(tmp_path / "source" / "member")
    dm = Enwik8DataModule(data_dir=tmp_path / "data", url=url, md5=md5)
    assert (tmp_path / "data" / "enwik8").read_bytes() == data
    assert bytes(dm.split_tokens("train")) == data[:4500]
    # (the hidden .enwik8.lock is the download lock: one fetcher per node)
    assert visible(tmp_path / "data") == ["enwik8", "enwik8.zip"]


def test_download_with_a_wrong_checksum_fails_clearly_and_leaves_nothing(tmp_path):
    url = make_zip(tmp_path / "mirror" / "enwik8.zip", b"not wikipedia" * 100)
    with pytest.raises(ValueError, match=r"has md5 [0-9a-f]{32}, expected 0{32}") as error:
        Enwik8DataModule(data_dir=tmp_path / "data", url=url, md5="0" * 32)
    assert "\n" not in str(error.value)
    assert visible(tmp_path / "data") == []


def test_failed_download_says_where_to_put_the_file(tmp_path):
    url = (tmp_path / "nowhere" / "enwik8.zip").as_uri()
    with pytest.raises(ValueError, match=r"downloading .* failed .* md5 a1fa5ffddb56f4953e"):
        Enwik8DataModule(data_dir=tmp_path / "data", url=url)
    assert visible(tmp_path / "data") == []


def test_offline_without_a_file_names_the_path_and_checksum(tmp_path):
    with pytest.raises(ValueError, match=r"download=false: put the file at .*enwik8 .*md5"):
        Enwik8DataModule(data_dir=tmp_path, download=False)


def test_a_local_zip_is_used_without_downloading(tmp_path):
    data = random_bytes(tmp_path / "member", 3000)
    make_zip(tmp_path / "data" / "enwik8.zip", data)
    md5 = md5_of(tmp_path / "member")
    dm = Enwik8DataModule(data_dir=tmp_path / "data", md5=md5, download=False, batch_size=2)
    assert bytes(dm.split_tokens("val")) == data[2700:2850]


def test_a_zip_without_enwik8_inside_is_rejected(tmp_path):
    make_zip(tmp_path / "enwik8.zip", b"x" * 100, name="other")
    with pytest.raises(ValueError, match="is not the enwik8 zip"):
        Enwik8DataModule(data_dir=tmp_path, download=False)
    assert visible(tmp_path) == ["enwik8.zip"]


def test_a_wrong_local_enwik8_is_reported_and_kept(tmp_path):
    random_bytes(tmp_path / "enwik8", 2000)
    with pytest.raises(ValueError, match="it is not the Hutter enwik8"):
        Enwik8DataModule(data_dir=tmp_path, download=False)
    assert (tmp_path / "enwik8").stat().st_size == 2000
    Enwik8DataModule(data_dir=tmp_path, download=False, md5=None, batch_size=2, bptt=5)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": [0.98, 0.01, 0.01]}, r"leaves the val split with 1 tokens"),
        ({"split": [0.9, 0.1, 0.0]}, r"each be in \(0, 1\]"),
        ({"split": [0.9, 0.1]}, r"split needs 3 fractions"),
        ({"split": [0.6, 0.3, 0.3]}, r"sum to at most 1"),
        ({"bptt": 0}, r"bptt must be an integer >= 1"),
        ({"batch_size": 40, "bptt": 20}, r"train split has 90 tokens, fewer than .* 801"),
        ({"vocab": "word"}, r"vocab must be one of 'byte', 'char'"),
    ],
)
def test_bad_settings_give_one_clear_line(kwargs, message, tmp_path):
    write_corpus(tmp_path / "c.txt", 100)
    with pytest.raises(ValueError, match=message) as error:
        TextDataModule(tmp_path / "c.txt", **{"bptt": 4, "batch_size": 2, **kwargs})
    assert "\n" not in str(error.value)


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TextDataModule(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        TextDataModule(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("café ".encode("latin-1") * 50)
    with pytest.raises(ValueError, match="is not UTF-8 .* use vocab=byte"):
        TextDataModule(tmp_path / "latin1.txt", vocab="char")
    with pytest.raises(ValueError, match=r"set task.path="):
        TextDataModule(None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=text"], "error: task=text: no text file given: set task.path="),
        (["task=text", "task.path=nope.txt"], "error: task=text: text file 'nope.txt' does not"),
        (
            ["task=enwik8", "task.datamodule.data_dir=empty", "task.datamodule.download=false"],
            "error: task=enwik8: enwik8 not found and task.datamodule.download=false: put",
        ),
    ],
)
def test_cli_reports_bad_text_input_in_one_line_before_work(cli, overrides, message):
    result = cli(*overrides, "logger=none")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert not (cli.cwd / "outputs").exists() or not list((cli.cwd / "outputs").rglob("*.ckpt"))


def test_unpacked_files_get_the_users_umask_permissions(tmp_path):
    """A shared data directory: what the suite unpacks is readable by the group and others
    when the umask says so (temporary files start as 0600)."""
    import os
    import stat

    data = random_bytes(tmp_path / "source" / "member", 5000)
    url = make_zip(tmp_path / "mirror" / "enwik8.zip", data)
    md5 = md5_of(tmp_path / "source" / "member")
    old = os.umask(0o022)
    try:
        Enwik8DataModule(data_dir=tmp_path / "data", url=url, md5=md5)
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "data" / "enwik8").stat().st_mode)
    assert mode == 0o644


@pytest.mark.parametrize("vocab", ["byte", "char"])
def test_a_text_of_one_repeated_symbol_is_refused(tmp_path, vocab):
    path = tmp_path / "same.txt"
    path.write_text("a" * 4000)
    with pytest.raises(ValueError, match="is one symbol \\('a'\\) repeated: there is nothing"):
        TextDataModule(path=path, vocab=vocab, bptt=8, batch_size=4)


def test_given_symbols_encode_another_file_with_the_trained_ids(tmp_path):
    """A re-score encodes with the model's vocabulary (gridlstm.evaluate passes the
    checkpoint's), not the ids sorted from the new file's own characters."""
    trained = TextDataModule(
        write_corpus(tmp_path / "a.txt", 2000), vocab="char", bptt=8, batch_size=4
    )
    other = tmp_path / "b.txt"
    other.write_text("time and memory " * 60)  # fewer distinct characters: other sorted ids
    own = TextDataModule(other, vocab="char", bptt=8, batch_size=4)
    given = TextDataModule(
        other,
        vocab="char",
        bptt=8,
        batch_size=4,
        **TextDataModule.stored_options(trained.module_kwargs()),
    )
    assert given.vocab == trained.vocab and own.vocab != trained.vocab
    assert decode(given.tokens[:16].tolist(), trained.vocab) == "time and memory "
    (tmp_path / "c.txt").write_text("time and memory Z " * 60)
    with pytest.raises(ValueError, match="'Z' that are not in the model's vocabulary"):
        TextDataModule(
            tmp_path / "c.txt", vocab="char", bptt=8, batch_size=4, symbols=trained.vocab
        )
    with pytest.raises(ValueError, match="symbols apply to vocab=char only"):
        TextDataModule(other, bptt=8, batch_size=4, symbols=trained.vocab)

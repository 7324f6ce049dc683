"""Addition data: correct sums, disjoint and reproducible splits, fresh training data."""

from __future__ import annotations

import pytest
import torch

from gridlstm.data.addition import EOS, VOCAB, AdditionDataModule
from gridlstm.data.synthetic import keys


def parse(row: torch.Tensor, digits: int, reverse: bool) -> tuple[int, int, int]:
    text = "".join(VOCAB[int(t)] for t in row)
    a, rest = text.split("+")
    b, rest = rest.split("=")
    s = rest.rstrip(".")
    assert len(a) == len(b) == digits and len(s) == digits + 1 and text.endswith(".")
    if reverse:
        a, b, s = a[::-1], b[::-1], s[::-1]
    return int(a), int(b), int(s)


@pytest.mark.parametrize(("digits", "reverse"), [(1, False), (4, False), (15, False), (7, True)])
def test_every_split_holds_correct_sums(digits: int, reverse: bool):
    dm = AdditionDataModule(digits=digits, reverse=reverse, val_size=20, test_size=20, seed=3)
    dm.setup()
    train = next(iter(dm.train_dataloader()))
    for rows in (dm.splits["val"], dm.splits["test"], train):
        assert rows.shape[1] == dm.prompt_length + dm.answer_length
        assert torch.all(rows[:, -1] == EOS)
        for row in rows:
            a, b, s = parse(row, digits, reverse)
            assert a + b == s


def test_fifteen_digit_sums_exceed_int64_free_arithmetic():
    """Digits are added digit-wise; a 15-digit sum with a carry out is exact."""
    dm = AdditionDataModule(digits=15, val_size=200, test_size=10, seed=0)
    dm.setup()
    sums = [parse(row, 15, False)[2] for row in dm.splits["val"]]
    assert max(sums) >= 10**15  # some sums carry into the 16th digit


def problems(rows: torch.Tensor, digits: int) -> set[bytes]:
    return set(keys(torch.cat([rows[:, :digits], rows[:, digits + 1 : 2 * digits + 1]], 1)))


def test_splits_are_disjoint_and_training_never_sees_held_out_problems():
    digits = 2  # 10^4 problems: collisions would happen if they were not prevented
    dm = AdditionDataModule(digits=digits, val_size=1000, test_size=1000, batch_size=512, seed=5)
    dm.setup()
    val, test = problems(dm.splits["val"], digits), problems(dm.splits["test"], digits)
    assert len(val) == 1000 and len(test) == 1000 and not val & test
    for batch in dm.train_dataloader():
        assert batch.shape[0] == 512
        assert not problems(batch, digits) & (val | test)


def test_same_seed_same_data_other_seed_other_data():
    def splits(seed: int) -> dict[str, torch.Tensor]:
        dm = AdditionDataModule(digits=5, val_size=50, test_size=50, seed=seed)
        dm.setup()
        return {**dm.splits, "train": next(iter(dm.train_dataloader()))}

    first, again, other = splits(1), splits(1), splits(2)
    for name in ("val", "test", "train"):
        assert torch.equal(first[name], again[name])
        assert not torch.equal(first[name], other[name])


def test_each_epoch_draws_fresh_training_problems():
    dm = AdditionDataModule(digits=6, val_size=10, test_size=10, batches_per_epoch=3, seed=0)
    dm.setup()
    loader = dm.train_dataloader()
    epoch1, epoch2 = list(loader), list(loader)
    assert len(epoch1) == len(epoch2) == 3
    assert not torch.equal(torch.cat(epoch1), torch.cat(epoch2))


def test_reverse_writes_the_same_problems_least_significant_first():
    plain = AdditionDataModule(digits=4, val_size=20, test_size=20, seed=9)
    rev = AdditionDataModule(digits=4, reverse=True, val_size=20, test_size=20, seed=9)
    plain.setup()
    rev.setup()
    for p, r in zip(plain.splits["val"], rev.splits["val"], strict=True):
        assert parse(p, 4, False) == parse(r, 4, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digits": 0}, "digits must be an integer >= 1, got 0"),
        ({"batch_size": -1}, "batch_size must be an integer >= 1"),
        ({"val_size": 0}, "val_size must be an integer >= 1"),
        ({"train_pool": 0}, "train_pool must be an integer >= 1"),
        ({"digits": 1, "val_size": 40, "test_size": 40}, "more than half of the 100 distinct"),
    ],
)
def test_bad_sizes_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdditionDataModule(**kwargs)


def test_the_training_seed_moves_only_the_training_stream():
    """-m seed=1,2,3 with a fixed data_seed: the same val/test problems, other training data."""

    def data(seed: int) -> tuple[AdditionDataModule, torch.Tensor]:
        dm = AdditionDataModule(digits=5, val_size=50, test_size=50, seed=seed, data_seed=7)
        dm.setup()
        return dm, next(iter(dm.train_dataloader()))

    (first, batch_1), (second, batch_2) = data(1), data(2)
    assert torch.equal(first.splits["val"], second.splits["val"])
    assert torch.equal(first.splits["test"], second.splits["test"])
    assert not torch.equal(batch_1, batch_2)
    moved = AdditionDataModule(digits=5, val_size=50, test_size=50, seed=1, data_seed=8)
    moved.setup()
    assert not torch.equal(moved.splits["val"], first.splits["val"])
    legacy = AdditionDataModule(digits=5, val_size=50, test_size=50, seed=7)  # data_seed=None
    legacy.setup()
    assert torch.equal(legacy.splits["val"], first.splits["val"])


def test_a_draw_equal_to_a_held_out_problem_is_replaced_without_shifting_the_stream():
    """data_seed chooses the held-out problems and nothing else: a training draw that equals
    one is replaced from a generator of its own, so every other draw stays where it was."""
    digits = 5

    def stream(held_out: set[bytes]) -> list[torch.Tensor]:
        dm = AdditionDataModule(digits=digits, val_size=10, test_size=10, batches_per_epoch=5)
        dm.setup()
        dm._held_out = held_out  # the stream reads the held-out keys from here
        return list(dm.train_dataloader())

    free = stream(set())
    collision = free[2][5:6]  # the third batch's sixth problem, made a held-out problem
    forced = stream(problems(collision, digits))
    assert [torch.equal(a, b) for a, b in zip(free, forced, strict=True)] == [
        True, True, False, True, True
    ]  # fmt: skip
    changed = (free[2] != forced[2]).any(dim=1).nonzero().flatten().tolist()
    assert changed == [5]
    assert not problems(forced[2], digits) & problems(collision, digits)

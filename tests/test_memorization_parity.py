"""Memorization and parity data: correct copies and labels, disjoint reproducible splits;
the parity classifier learns a small k."""

from __future__ import annotations

import pytest
import torch

from gridlstm.data import MemorizationDataModule, ParityDataModule
from gridlstm.data.synthetic import keys
from gridlstm.tasks import VectorClassificationModule
from tests.conftest import quiet_trainer

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def test_memorization_rows_copy_the_sequence():
    dm = MemorizationDataModule(length=7, vocab=11, val_size=30, test_size=30, seed=1)
    dm.setup()
    for rows in (dm.splits["val"], dm.splits["test"], next(iter(dm.train_dataloader()))):
        assert rows.shape[1] == dm.prompt_length + dm.answer_length == 16
        seq = rows[:, :7]
        assert seq.max() < 9  # ordinary symbols only: 11 tokens minus 2 special
        assert torch.all(rows[:, 7] == dm.separator) and torch.all(rows[:, -1] == dm.end)
        assert torch.equal(rows[:, 8:15], seq)
    assert dm.module_kwargs() == {
        "vocab_size": 11,
        "prompt_length": 8,
        "answer_length": 8,
        "end_token": 10,
        "blank_token": None,
    }


def test_parity_labels_are_the_xor_of_the_bits():
    dm = ParityDataModule(bits=9, val_size=50, test_size=50, seed=2)
    dm.setup()
    for rows in (dm.splits["val"], next(iter(dm.train_dataloader()))):
        bits, label = rows[:, :9], rows[:, 9]
        expected = torch.zeros_like(label)
        for i in range(9):
            expected ^= bits[:, i]
        assert torch.equal(label, expected)
    assert dm.module_kwargs() == {"input_size": 9, "num_classes": 2}


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: MemorizationDataModule(
            length=4, vocab=6, val_size=20, test_size=20, seed=seed
        ),
        lambda seed: ParityDataModule(bits=8, val_size=60, test_size=60, batch_size=128, seed=seed),
    ],
)
def test_splits_disjoint_and_reproducible(make):
    first, again, other = make(0), make(0), make(1)
    for dm in (first, again, other):
        dm.setup()
    width = first.splits["val"].shape[1]
    raw = first.length if isinstance(first, MemorizationDataModule) else first.bits
    val, test = set(keys(first.splits["val"][:, :raw])), set(keys(first.splits["test"][:, :raw]))
    assert not val & test
    for batch in first.train_dataloader():
        assert not set(keys(batch[:, :raw])) & (val | test)
    assert (
        torch.equal(first.splits["val"], again.splits["val"])
        and width == again.splits["val"].shape[1]
    )
    assert not torch.equal(first.splits["val"], other.splits["val"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MemorizationDataModule(length=0), "length must be an integer >= 1"),
        (lambda: MemorizationDataModule(vocab=2), "vocab must be an integer >= 3"),
        (lambda: ParityDataModule(bits=0), "bits must be an integer >= 1"),
        (lambda: ParityDataModule(bits=3, val_size=2, test_size=3), "more than half of the 8"),
    ],
)
def test_bad_task_sizes_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_tied_one_lstm_learns_small_parity():
    torch.manual_seed(0)
    dm = ParityDataModule(
        bits=4, val_size=4, test_size=4, batch_size=32, batches_per_epoch=50, train_pool=8, seed=0
    )
    net = {
        "_target_": "gridlstm.nn.GridLSTM",
        "hidden_size": 16,
        "num_layers": 4,
        "grid_dims": 0,
        "tied": True,
    }
    module = VectorClassificationModule(net=net, optimizer=ADAM, **dm.module_kwargs())
    assert module.backbone.backend == "fast" and module.backbone.input_size == 4
    trainer = quiet_trainer(max_steps=300, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    pool = dm.splits["pool"]
    accuracy = (module(pool[:, :-1].float()).argmax(-1) == pool[:, -1]).float().mean()
    assert accuracy == 1.0
    assert module.samples_seen == 300 * 32


@pytest.mark.parametrize(
    ("net", "macs"),
    [
        # k x d + (L - 1) x d x d + d x classes
        (
            {"_target_": "gridlstm.nn.DeepFeedForward", "num_layers": 4, "residual": True},
            16 * 64 + 3 * 64 * 64 + 64 * 2,
        ),
        # the input projection k x d, then L applications of one LSTM transform (4d x d), head
        (
            {"_target_": "gridlstm.nn.GridLSTM", "num_layers": 4, "grid_dims": 0, "tied": True},
            16 * 64 + 4 * 4 * 64 * 64 + 64 * 2,
        ),
    ],
)
def test_a_parity_run_records_the_multiply_adds_of_one_sample(net, macs, tmp_path):
    """Parameters are matched across families, compute is not: metrics.json states both."""
    data = ParityDataModule(bits=16, batch_size=8, batches_per_epoch=1, val_size=8, test_size=8)
    adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
    module = VectorClassificationModule(
        {**net, "hidden_size": 64}, optimizer=adam, **data.module_kwargs()
    )
    quiet_trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=data)
    assert module.extra_metrics["macs_per_sample"] == macs

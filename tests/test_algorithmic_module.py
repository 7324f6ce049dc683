"""The algorithmic-task LightningModule: metrics on hand-made predictions, loss masking,
evaluation that never trains, and a model that can fit a tiny pool."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gridlstm.data.addition import EOS, AdditionDataModule
from gridlstm.tasks import AlgorithmicSequenceModule
from gridlstm.tasks.algorithmic import mask_after_end
from tests.conftest import quiet_trainer

NET = {
    "_target_": "gridlstm.nn.Grid2dLSTM",
    "input_size": 24,
    "hidden_size": 24,
    "num_layers": 2,
    "batch_first": True,
    "project_input": True,  # counted below: the input projection (e x d)
}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def module_for(dm: AdditionDataModule) -> AlgorithmicSequenceModule:
    torch.manual_seed(0)
    return AlgorithmicSequenceModule(net=NET, optimizer=ADAM, **dm.module_kwargs())


def test_mask_after_end_makes_positions_after_an_early_stop_wrong():
    target = torch.tensor([[1, 2, 3, EOS], [4, 5, 6, EOS], [7, 8, 9, EOS]])
    generated = torch.tensor(
        [
            [1, 2, 3, EOS],  # exact
            [4, EOS, 6, EOS],  # stops early: "6" after the end must not count
            [7, 8, 9, 9],  # overruns: no end token where one is due
        ]
    )
    masked = mask_after_end(generated, target, EOS, vocab_size=13)
    correct = masked == target
    assert correct.all(1).tolist() == [True, False, False]
    assert correct[:, :-1].sum(1).tolist() == [3, 1, 3]


def test_evaluation_scores_exact_match_and_digit_accuracy(monkeypatch):
    dm = AdditionDataModule(digits=2, val_size=4, test_size=4, eval_batch_size=4, seed=0)
    dm.setup()
    module = module_for(dm)
    batch = dm.splits["val"]
    answers = batch[:, dm.prompt_length :].clone()
    answers[1, 0] = (answers[1, 0] + 1) % 10  # one wrong digit
    answers[2, 1] = EOS  # stops after one digit: 1 of 3 digits right
    monkeypatch.setattr(module.model, "greedy_continue", lambda prompt, steps: answers)
    module._evaluate(batch, "val")
    assert module.val_acc.compute().item() == 0.5
    assert abs(module.val_digit_acc.compute().item() - (3 + 2 + 1 + 3) / 12) < 1e-6


def test_loss_only_on_answer_positions():
    dm = AdditionDataModule(digits=3, val_size=5, test_size=5, seed=0)
    dm.setup()
    module = module_for(dm)
    batch = dm.splits["val"]
    logits = module(batch[:, :-1])
    per_position = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
    # Targets are the answer tokens only: positions prompt_length .. end of the row.
    expected = per_position[:, dm.prompt_length - 1 :].mean()
    torch.testing.assert_close(module._answer_loss(batch), expected)
    assert not torch.isclose(per_position.mean(), expected)


def test_validation_never_steps_the_optimizer_and_runs_in_eval_mode():
    dm = AdditionDataModule(digits=2, val_size=20, test_size=20, eval_batch_size=10, seed=0)
    module = module_for(dm)
    modes = []
    module.model.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    before = {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}
    trainer = quiet_trainer()
    trainer.validate(module, datamodule=dm, verbose=False)
    assert modes and not any(modes)
    for key, value in before.items():
        assert torch.equal(module.state_dict()[key], value), key


def test_model_overfits_a_tiny_pool():
    dm = AdditionDataModule(
        digits=2,
        val_size=20,
        test_size=20,
        train_pool=16,
        batch_size=16,
        batches_per_epoch=50,
        seed=0,
    )
    module = module_for(dm)
    trainer = quiet_trainer(max_steps=250, limit_val_batches=0)
    dm.setup()
    start = module._answer_loss(dm.splits["pool"]).item()
    trainer.fit(module, datamodule=dm)
    end = module._answer_loss(dm.splits["pool"]).item()
    assert end < 0.1 * start, (start, end)
    assert module.samples_seen == 250 * 16


@pytest.mark.parametrize("feedback", ["none", "teacher"])
@pytest.mark.parametrize(("tied", "layers"), [(True, 3), (False, 2)])
def test_an_addition_run_records_the_multiply_adds_of_one_problem(feedback, tied, layers):
    """Every position of one problem's training pass: the input projection (e x d), one
    2-LSTM block per layer (two LSTMs, each 4d x 2d: 16 d^2) and the head (d x vocab). A
    tied grid's depth costs compute, not parameters: both are in metrics.json."""
    dm = AdditionDataModule(
        digits=3, batch_size=4, batches_per_epoch=1, val_size=4, test_size=4, feedback=feedback
    )
    kwargs = dm.module_kwargs()
    net = {**NET, "num_layers": layers, "tied": tied}
    module = AlgorithmicSequenceModule(net=net, optimizer=ADAM, **kwargs)
    quiet_trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=dm)
    positions = kwargs["prompt_length"] + kwargs["answer_length"] - 1
    d, e, vocab = NET["hidden_size"], NET["input_size"], kwargs["vocab_size"]
    expected = positions * (e * d + layers * 16 * d * d + d * vocab)
    assert module.extra_metrics["macs_per_sample"] == expected


def test_a_stacked_lstm_run_records_the_multiply_adds_of_its_lstm_layers():
    """The baseline's `nn.LSTM` runs fused in oneDNN (cuDNN on a GPU), one op FLOP counters
    give 0: its count is the same per-position sum as the grid's, each layer 4d x (e + d)."""
    dm = AdditionDataModule(
        digits=3, batch_size=4, batches_per_epoch=1, val_size=4, test_size=4, feedback="none"
    )
    kwargs = dm.module_kwargs()
    d, layers = 8, 2
    net = {"_target_": "gridlstm.nn.StackedLSTM", "input_size": d, "hidden_size": d}
    net |= {"batch_first": True}
    module = AlgorithmicSequenceModule(net={**net, "num_layers": layers}, optimizer=ADAM, **kwargs)
    quiet_trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=dm)
    positions = kwargs["prompt_length"] + kwargs["answer_length"] - 1
    expected = positions * (layers * 4 * d * (d + d) + d * kwargs["vocab_size"])
    assert module.extra_metrics["macs_per_sample"] == expected

"""The answer protocol (``task.datamodule.feedback``): with ``none`` the model never reads an
answer token, and training and evaluation score the same single pass, on every sequence
backbone; ``teacher`` (the default) keeps the vocabulary and the feedback it always had."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from gridlstm.data import AdditionDataModule, MemorizationDataModule
from gridlstm.data.addition import VOCAB
from gridlstm.tasks.algorithmic import mask_after_end
from tests.conftest import CONF
from tests.test_configs import compose_train

SEQUENCE_MODELS = sorted(
    p.stem for p in (CONF / "model").glob("*.yaml") if "input_kind: sequence" in p.read_text()
)
TASKS = {
    "addition": ["task.datamodule.digits=3"],
    "memorization": ["task.datamodule.length=4", "task.datamodule.vocab=8"],
}


def build(model: str, task: str, feedback: str, tmp_path):
    from gridlstm.run.build import build_module

    cfg = compose_train(
        [
            f"model={model}",
            f"task={task}",
            f"task.datamodule.feedback={feedback}",
            "model.net.hidden_size=8",
            "model.net.num_layers=2",
            "task.datamodule.val_size=6",
            "task.datamodule.test_size=6",
            *TASKS[task],
        ],
        tmp_path,
    )
    datamodule = instantiate(cfg.task.datamodule)
    datamodule.setup()
    torch.manual_seed(0)
    return build_module(cfg, datamodule).eval(), datamodule


def test_there_are_sequence_backbones_to_test():
    assert {"grid2d", "grid2d_untied", "stacked_lstm"} <= set(SEQUENCE_MODELS)


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_without_feedback_the_answer_tokens_never_reach_the_model(model, task, tmp_path):
    module, dm = build(model, task, "none", tmp_path)
    batch = dm.splits["val"]
    changed = batch.clone()
    answer = changed[:, dm.prompt_length :]
    changed[:, dm.prompt_length :] = (answer + 1) % dm.module_kwargs()["end_token"]
    with torch.no_grad():
        torch.testing.assert_close(module(module.inputs(changed)), module(module.inputs(batch)))
        # The inputs end in blanks: the prompt, then answer_length - 1 blank tokens.
        blanks = module.inputs(batch)[:, dm.prompt_length :]
        assert (blanks == dm.module_kwargs()["blank_token"]).all()


@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_with_teacher_feedback_the_answer_tokens_do_reach_the_model(model, tmp_path):
    """The control of the test above: the same change moves the logits when fed back."""
    module, dm = build(model, "addition", "teacher", tmp_path)
    batch = dm.splits["val"]
    changed = batch.clone()
    changed[:, dm.prompt_length] = (changed[:, dm.prompt_length] + 1) % 10
    with torch.no_grad():
        assert not torch.allclose(module(module.inputs(changed)), module(module.inputs(batch)))


@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_without_feedback_evaluation_scores_the_pass_the_loss_reads(model, tmp_path, monkeypatch):
    module, dm = build(model, "addition", "none", tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("feedback=none must not feed predictions back")

    monkeypatch.setattr(module.model, "greedy_continue", no_decoding)
    batch = dm.splits["val"]
    target = batch[:, dm.prompt_length :]
    with torch.no_grad():
        logits = module.answer_logits(batch)
        module._evaluate(batch, "val")
    predicted = mask_after_end(logits.argmax(-1), target, dm.module_kwargs()["end_token"], 14)
    exact = (predicted == target).all(1).float().mean()
    torch.testing.assert_close(module.val_acc.compute(), exact)
    torch.testing.assert_close(module.val_loss.compute(), module._answer_loss(batch).detach())


def test_the_blank_is_one_token_after_the_vocabulary_and_only_without_feedback():
    teacher = AdditionDataModule(digits=2, val_size=4, test_size=4)
    none = AdditionDataModule(digits=2, val_size=4, test_size=4, feedback="none")
    assert teacher.module_kwargs()["vocab_size"] == len(VOCAB)
    assert teacher.module_kwargs()["blank_token"] is None
    assert none.module_kwargs()["vocab_size"] == len(VOCAB) + 1
    assert none.module_kwargs()["blank_token"] == len(VOCAB)
    copy = MemorizationDataModule(length=3, vocab=8, val_size=4, test_size=4, feedback="none")
    assert copy.module_kwargs()["vocab_size"] == 9 and copy.module_kwargs()["blank_token"] == 8
    # The rows themselves are the same under both protocols: the blank is the module's input.
    none.setup(), teacher.setup()
    assert torch.equal(none.splits["val"], teacher.splits["val"])


@pytest.mark.parametrize("make", [AdditionDataModule, MemorizationDataModule])
def test_an_unknown_feedback_is_refused_with_the_choices(make):
    with pytest.raises(ValueError, match="feedback must be one of 'teacher', 'none'; got 'echo'"):
        make(feedback="echo")


def test_a_model_trains_without_feedback(tmp_path):
    """Loss falls on a tiny pool with blanks as the only answer-time input."""
    from gridlstm.tasks import AlgorithmicSequenceModule
    from tests.conftest import quiet_trainer
    from tests.test_algorithmic_module import ADAM, NET

    dm = AdditionDataModule(
        digits=2, val_size=8, test_size=8, train_pool=16, batch_size=16, feedback="none"
    )
    dm.setup()
    torch.manual_seed(0)
    module = AlgorithmicSequenceModule(net=NET, optimizer=ADAM, **dm.module_kwargs())
    start = module._answer_loss(dm.splits["pool"]).item()
    quiet_trainer(max_steps=150, limit_val_batches=0).fit(module, datamodule=dm)
    end = module._answer_loss(dm.splits["pool"]).item()
    assert end < 0.5 * start, (start, end)

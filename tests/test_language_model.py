"""The language-model task: truncated BPTT equals one long sequence, bits/char on a
hand-computed case, evaluation that never trains, state handling across batches and
epochs, learning on a tiny corpus, and the end-to-end command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gridlstm.data import TextDataModule
from gridlstm.data.text import EvalWindows
from gridlstm.nn import Grid2dLSTM, StackedLSTM, TokenSequenceModel, detach_state
from gridlstm.tasks import LanguageModelModule
from tests.conftest import TINY_LM, quiet_trainer, write_corpus

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def grid_net(**options) -> dict:
    return {
        "_target_": "gridlstm.nn.Grid2dLSTM",
        "input_size": 10,
        "hidden_size": 10,
        "num_layers": 3,
        "batch_first": True,
        **options,
    }


@pytest.mark.parametrize(
    "backbone",
    [
        lambda: Grid2dLSTM(6, 7, 3, backend="fast", batch_first=True),
        lambda: Grid2dLSTM(
            6, 7, 3, backend="hyperplane", tied=False, priority="time", batch_first=True
        ),
        lambda: Grid2dLSTM(6, 7, 2, backend="naive", peephole=True, batch_first=True),
        lambda: StackedLSTM(6, 7, 2, batch_first=True),
    ],
    ids=["grid-fast", "grid-hyperplane-untied", "grid-naive", "stacked"],
)
def test_carrying_state_across_chunks_equals_one_long_sequence(backbone):
    torch.manual_seed(0)
    model = TokenSequenceModel(11, backbone()).double()
    tokens = torch.randint(0, 11, (4, 23))
    whole, _ = model(tokens)
    state, chunks = None, []
    for chunk in tokens.split(5, dim=1):  # 5, 5, 5, 5, 3
        logits, state = model(chunk, state)
        state = detach_state(state)
        chunks.append(logits)
    torch.testing.assert_close(torch.cat(chunks, 1), whole)


class FixedDistribution(nn.Module):
    """Predicts the same next-symbol distribution everywhere (for hand-computed bpc)."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(probs).log()

    def forward(self, tokens, state=None):
        return self.logits.expand(*tokens.shape, -1), state


def test_bits_per_char_on_a_hand_computed_case():
    module = LanguageModelModule(grid_net(), vocab_size=4, optimizer=ADAM)
    module.model = FixedDistribution([0.5, 0.25, 0.125, 0.125])
    tokens = np.array([0, 1, 0, 2, 0, 3, 3])  # targets 1,0,2,0,3,3: 2+1+3+1+3+3 bits
    windows = EvalWindows(tokens, rows=2, bptt=2, rank=0, world=1)
    module.eval_state = None
    for i in range(len(windows)):
        module._evaluate(windows[i], module.val_nats)
    bpc = module.val_nats.compute().item() / math.log(2)
    assert bpc == pytest.approx(13 / 6)


def tiny_text(tmp_path, **kwargs) -> TextDataModule:
    path = write_corpus(tmp_path / "corpus.txt", 2400)
    return TextDataModule(path, **{"bptt": 10, "batch_size": 4, "eval_batch_size": 3, **kwargs})


def test_evaluation_carries_state_over_the_whole_split(tmp_path):
    """Validation bpc equals the bpc of one forward pass over each evaluation stream."""
    dm = tiny_text(tmp_path)
    torch.manual_seed(0)
    module = LanguageModelModule(grid_net(), vocab_size=256, optimizer=ADAM)
    [result] = quiet_trainer().validate(module, datamodule=dm, verbose=False)
    windows = EvalWindows(dm.split_tokens("val"), 3, 10, 0, 1)
    inputs, labels = windows.inputs, windows.labels
    with torch.no_grad():
        logits, _ = module.eval()(inputs)
    losses = nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    expected = losses[labels != -100].mean().item() / math.log(2)
    assert result["val/bpc"] == pytest.approx(expected, rel=1e-5)
    assert result["val/loss"] == pytest.approx(expected * math.log(2), rel=1e-5)


def test_evaluation_never_steps_the_optimizer_and_runs_in_eval_mode(tmp_path):
    dm = tiny_text(tmp_path)
    module = LanguageModelModule(grid_net(dropout=0.3), 256, ADAM, output_dropout=0.5)
    modes = []
    module.model.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    before = {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}
    trainer = quiet_trainer()
    first = trainer.validate(module, datamodule=dm, verbose=False)
    second = trainer.test(module, datamodule=dm, verbose=False)
    again = trainer.validate(module, datamodule=dm, verbose=False)
    assert modes and not any(modes)
    assert first == again  # dropout is off: evaluation is deterministic
    assert second[0]["test/bpc"] > 0
    for key, value in before.items():
        assert torch.equal(module.state_dict()[key], value), key


def test_training_state_is_carried_detached_and_reset_each_epoch(tmp_path):
    dm = tiny_text(tmp_path, batch_size=8, bptt=50)  # 2160 train bytes: 5 batches per epoch
    module = LanguageModelModule(grid_net(), 256, ADAM)
    seen = []
    forward = module.forward

    def spy(tokens, state=None):
        seen.append(None if state is None else all(not s.requires_grad for s in state))
        return forward(tokens, state)

    module.forward = spy
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule=dm)
    assert seen == [None, True, True, True, True] * 2


def test_a_tiny_model_learns_a_tiny_corpus(tmp_path):
    torch.manual_seed(0)
    dm = tiny_text(tmp_path, batch_size=8, bptt=20)
    module = LanguageModelModule(grid_net(input_size=24, hidden_size=24), 256, ADAM)
    trainer = quiet_trainer(max_epochs=12, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.callback_metrics["train/chars_per_s"] > 0
    assert trainer.callback_metrics["train/grad_norm"] > 0
    [result] = trainer.validate(module, datamodule=dm, verbose=False)
    assert result["val/bpc"] < 3.5  # uniform over bytes is 8 bits/char
    assert module.samples_seen == trainer.global_step * 8


@pytest.mark.slow  # 13 s; the default suite near 10 minutes on 2 cores
def test_train_command_writes_bpc_and_throughput_and_the_sampler_reads_its_checkpoint(
    cli, tmp_path
):
    corpus = write_corpus(tmp_path / "corpus.txt", 3000)
    result = cli("task=text", f"task.path={corpus}", *TINY_LM, "logger=csv")
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = list((cli.cwd / "outputs").glob("*/*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val/bpc", "test/bpc", "val/loss", "train/chars_per_s", "params"} <= metrics.keys()
    assert metrics["test/bpc"] == pytest.approx(metrics["test/loss"] / math.log(2), rel=1e-5)
    import subprocess
    import sys

    from tests.conftest import offline_env

    sampled = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridlstm.sample",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            "prime=grid ",
            "length=30",
            "seed=3",
        ],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
    )
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("grid ") and len(sampled.stdout.rstrip("\n")) >= 30


def test_output_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = TokenSequenceModel(11, StackedLSTM(8, 8, 1, batch_first=True), dropout=0.5)
    tokens = torch.randint(0, 11, (2, 6))
    assert not torch.equal(model(tokens)[0], model(tokens)[0])
    model.eval()
    torch.testing.assert_close(model(tokens)[0], model(tokens)[0])


def test_a_resume_takes_its_own_ranks_state_or_a_fresh_one_for_another_world(caplog):
    """Per-rank BPTT states: rank r continues with state r; a checkpoint from another number
    of processes (the streams are cut differently) starts every stream afresh, saying why."""
    from types import SimpleNamespace

    module = LanguageModelModule(grid_net(), vocab_size=5, optimizer=ADAM)
    states = [(torch.full((2, 3), float(rank)),) for rank in range(2)]
    module._trainer = SimpleNamespace(world_size=2, global_rank=1)
    assert module._own_state(states)[0].equal(states[1][0])
    with caplog.at_level("WARNING"):
        assert module._own_state(states[:1]) is None
    assert "BPTT state of 1 process(es), this run has 2" in caplog.text


def test_a_grid_state_on_another_device_is_an_error_as_in_nn_lstm():
    net = Grid2dLSTM(3, 4, 1, batch_first=True)
    x = torch.randn(2, 5, 3)
    _, state = net(x)
    moved = (
        [tuple(t.to("meta") for t in pair) for pair in state]
        if isinstance(state, list)
        else tuple(t.to("meta") for t in state)
    )
    with pytest.raises(RuntimeError, match="not at the same device"):
        net(x, moved)
    with pytest.raises(RuntimeError, match="not at the same device"):
        nn.LSTM(3, 4, batch_first=True)(x, (torch.zeros(1, 2, 4, device="meta"),) * 2)

"""Sampling: deterministic for a seed, top_k respected, checkpoints carry the vocabulary,
and bad arguments or checkpoints give one clear line."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from gridlstm.data import AdditionDataModule, TextDataModule
from gridlstm.nn import TokenSequenceModel
from gridlstm.run.errors import ConfigError
from gridlstm.sample import SampleConfig, SampleError, main, parse, sample
from gridlstm.tasks import AlgorithmicSequenceModule, LanguageModelModule
from tests.conftest import quiet_trainer, write_corpus

NET = {
    "_target_": "gridlstm.nn.Grid2dLSTM",
    "input_size": 9,
    "hidden_size": 9,
    "num_layers": 2,
    "batch_first": True,
}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def save_checkpoint(module, datamodule, path):
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    dm = TextDataModule(write_corpus(tmp / "c.txt", 1500), vocab="char", bptt=8, batch_size=4)
    torch.manual_seed(0)
    module = LanguageModelModule(NET, optimizer=ADAM, **dm.module_kwargs())
    return save_checkpoint(module, dm, tmp / "lm.ckpt"), dm.vocab


def run(ckpt, *args):
    return sample(parse([f"ckpt_path={ckpt}", *args]))


def test_sampling_is_deterministic_for_a_seed_and_uses_the_checkpoint_vocabulary(
    char_checkpoint,
):
    ckpt, vocab = char_checkpoint
    first = run(ckpt, "prime=grid ", "length=40", "seed=5")
    assert first == run(ckpt, "prime=grid ", "length=40", "seed=5")
    assert first != run(ckpt, "prime=grid ", "length=40", "seed=6")
    assert first.startswith("grid ") and len(first) == 45
    assert set(first) <= set(vocab)


def test_top_k_one_and_temperature_zero_are_greedy(char_checkpoint):
    ckpt, _ = char_checkpoint
    greedy = run(ckpt, "prime=long ", "length=25", "temperature=0")
    assert run(ckpt, "prime=long ", "length=25", "top_k=1", "seed=1") == greedy
    assert run(ckpt, "prime=long ", "length=25", "top_k=1", "seed=2") == greedy


class FixedLogits(nn.Module):
    input_size = hidden_size = 3
    batch_first = True

    def forward(self, x, state=None):
        return x.new_zeros(*x.shape[:2], 3), state


def test_top_k_only_draws_the_k_most_likely_tokens():
    model = TokenSequenceModel(6, FixedLogits())
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 3.0, 1.0, 2.0, 0.5, 2.5]))
    generator = torch.Generator().manual_seed(0)
    prompt = torch.zeros(1, 1, dtype=torch.long)
    drawn = model.sample(prompt, 400, temperature=2.0, top_k=3, generator=generator)
    assert set(drawn.flatten().tolist()) == {1, 3, 5}
    drawn = model.sample(prompt, 400, temperature=2.0, generator=generator)
    assert set(drawn.flatten().tolist()) == set(range(6))


def test_a_checkpoint_from_another_task_is_refused_in_one_line(tmp_path, capsys):
    dm = AdditionDataModule(digits=2, val_size=10, test_size=10, batches_per_epoch=2)
    module = AlgorithmicSequenceModule(NET, optimizer=ADAM, **dm.module_kwargs())
    ckpt = save_checkpoint(module, dm, tmp_path / "addition.ckpt")
    with pytest.raises(SystemExit) as exit_:
        main([f"ckpt_path={ckpt}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a language-model checkpoint" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ckpt_path=x.ckpt", "tokens=5"], "unknown argument 'tokens=5'; valid: ckpt_path="),
        (["ckpt_path=x.ckpt", "length=many"], "length: Value 'many'"),
        (["ckpt_path=x.ckpt", "length=0"], "length must be in"),
        (["ckpt_path=x.ckpt", "temperature=-1"], "temperature must be >= 0"),
        (["ckpt_path=x.ckpt", "top_k=0"], "top_k must be >= 1"),
        (["prime=a"], "no checkpoint given"),
        (["ckpt_path=x.ckpt", "prime="], "prime must hold at least one character"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ConfigError, match=message):
        parse(args)


def test_bad_checkpoint_files_and_unknown_prime_characters(tmp_path, char_checkpoint):
    with pytest.raises(SampleError, match="no such file"):
        sample(SampleConfig(ckpt_path=str(tmp_path / "none.ckpt")))
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(SampleError, match=r"a text file \(it begins 'not a checkp'\)"):
        sample(SampleConfig(ckpt_path=str(tmp_path / "junk.ckpt")))
    ckpt, _ = char_checkpoint
    with pytest.raises(SampleError, match=r"prime: characters 'Z' are not in the model's"):
        run(ckpt, "prime=Zgrid")


def test_weights_that_disagree_with_the_stored_config_are_one_line(tmp_path, char_checkpoint):
    """A checkpoint edited or mixed from two runs: a tensor of another shape, or a vocabulary
    that does not match the embedding, is named before anything is sampled."""
    ckpt, vocab = char_checkpoint
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    narrow = {**checkpoint, "state_dict": dict(checkpoint["state_dict"])}
    weight = narrow["state_dict"]["model.embedding.weight"]
    narrow["state_dict"]["model.embedding.weight"] = weight[:, :3]
    torch.save(narrow, tmp_path / "narrow.ckpt")
    stored, built = (weight.shape[0], 3), tuple(weight.shape)
    with pytest.raises(
        SampleError,
        match=re.escape(
            f"its weights do not fit the model its stored config builds (resized: "
            f"model.embedding.weight (stored {stored}, built {built}))"
        ),
    ):
        run(tmp_path / "narrow.ckpt")
    short = {**checkpoint, "hyper_parameters": dict(checkpoint["hyper_parameters"])}
    short["hyper_parameters"]["vocab"] = vocab[:5]
    torch.save(short, tmp_path / "short.ckpt")
    with pytest.raises(SampleError, match=f"vocab holds 5 symbols but vocab_size is {len(vocab)}"):
        run(tmp_path / "short.ckpt")


def test_prime_is_kept_as_text():
    assert parse(["ckpt_path=a", "prime=true"]).prime == "true"
    assert parse(["ckpt_path=a", "prime=12", "top_k=null"]).top_k is None


def test_a_checkpoint_naming_other_code_is_refused_and_never_runs_it(tmp_path, char_checkpoint):
    ckpt, _ = char_checkpoint
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    marker = tmp_path / "written"
    checkpoint["hyper_parameters"]["net"] = {
        "_target_": "pathlib.Path.write_text",
        "self": str(marker),
        "data": "x",
    }
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    with pytest.raises(SampleError, match="'pathlib.Path.write_text' is not one of the suite's"):
        run(crafted)
    assert not marker.exists()


def test_the_backbone_may_be_named_by_any_accepted_path_but_must_be_a_language_model(
    tmp_path, char_checkpoint
):
    """A checkpoint may name its backbone by its defining module's path, as the checkpoint
    loader allows; a net class of the suite that is no sequence backbone is refused."""
    ckpt, _ = char_checkpoint
    checkpoint = torch.load(ckpt, weights_only=True)
    exported = checkpoint["hyper_parameters"]["net"]["_target_"]
    name = exported.rpartition(".")[2]
    assert name == "Grid2dLSTM"
    defining = f"gridlstm.nn.grid2d.{name}"
    net = checkpoint["hyper_parameters"]["net"]
    checkpoint["hyper_parameters"]["net"] = {**net, "_target_": defining}
    torch.save(checkpoint, tmp_path / "defining.ckpt")
    assert run(tmp_path / "defining.ckpt", "prime=grid ", "length=5", "seed=5") == run(
        ckpt, "prime=grid ", "length=5", "seed=5"
    )
    refusals = {  # the backbone: the one message each
        "gridlstm.nn.GridLSTM": r"\(GridLSTM\) is not a sequence model",  # grid_dims=0 below
        "gridlstm.nn.SmallCNN": "unexpected keyword argument 'input_size'",
    }
    for target, message in refusals.items():
        extra = {"grid_dims": 0} if target.endswith("GridLSTM") else {}
        checkpoint["hyper_parameters"]["net"] = {**net, "_target_": target, **extra}
        torch.save(checkpoint, tmp_path / "other.ckpt")
        with pytest.raises(SampleError, match=f"cannot rebuild the model .*{message}"):
            run(tmp_path / "other.ckpt", "length=5")

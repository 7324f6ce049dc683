"""Translation through the real commands: each model overfits a handful of pairs to BLEU 100
with ``train.py``; ``gridlstm.translate`` translates a file with the checkpoint alone, scores
it like sacrebleu, and refuses bad files and checkpoints in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sacrebleu
import torch

from gridlstm.tasks.translation import score
from gridlstm.translate import main as translate_main
from tests.conftest import offline_env, run_cli, toy_pairs

HANDFUL = toy_pairs(8, seed=5)
OVERFIT = [
    "task=translation",
    "task.datamodule.src_vocab_size=270",
    "task.datamodule.tgt_vocab_size=270",
    "task.datamodule.batch_size=8",
    "task.module.test_beam=2",
    "model.net.hidden_size=32",
    "model.net.num_layers=1",
    "trainer.max_steps=300",
    "trainer.val_check_interval=50",
    "trainer.check_val_every_n_epoch=null",
    "optim.optimizer.lr=0.01",
    "logger=none",
]


def write_handful(tmp_path):
    path = tmp_path / "handful.tsv"
    path.write_text("".join(f"{en}\t{zh}\n" for zh, en in HANDFUL), encoding="utf-8")
    return path


def overfit(tmp_path, model: str):
    data = write_handful(tmp_path)
    args = [
        *OVERFIT,
        f"model={model}",
        f"task.path={data}",
        f"task.datamodule.val_path={data}",
        f"task.datamodule.test_path={data}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    return metrics, tmp_path / "run"


@pytest.fixture(scope="module")
def reencoder_run(tmp_path_factory):
    return overfit(tmp_path_factory.mktemp("reencoder"), "reencoder")


def test_the_reencoder_overfits_a_handful_of_pairs_to_bleu_100(reencoder_run):
    metrics, _ = reencoder_run
    assert metrics["val/bleu"] == pytest.approx(100.0)
    assert metrics["test/bleu"] == pytest.approx(100.0)  # beam 2
    assert {"val/chrf", "val/loss", "val/ppl", "test/chrf", "train/tokens_per_s"} <= set(metrics)


@pytest.mark.parametrize(
    "model", ["lstm_attention", pytest.param("transformer", marks=pytest.mark.slow)]
)
def test_the_baselines_overfit_a_handful_of_pairs_to_bleu_100(tmp_path, model):
    metrics, _ = overfit(tmp_path, model)
    assert metrics["val/bleu"] == pytest.approx(100.0)


def translate(*args, cwd):
    command = [sys.executable, "-m", "gridlstm.translate", *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=120
    )


def best_checkpoint(run):
    (path,) = (run / "checkpoints").glob("best-*.ckpt")
    return path


def test_translate_reproduces_the_references_and_scores_like_sacrebleu(reencoder_run, tmp_path):
    _, run = reencoder_run
    source = tmp_path / "in.zh"
    source.write_text("".join(f"{zh}\n" for zh, _ in HANDFUL), encoding="utf-8")
    reference = tmp_path / "ref.en"
    reference.write_text("".join(f"{en}\n" for _, en in HANDFUL), encoding="utf-8")
    out = tmp_path / "out.en"
    result = translate(
        f"ckpt_path={best_checkpoint(run)}",
        f"input={source}",
        f"output={out}",
        f"reference={reference}",
        "beam=3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    hypotheses = out.read_text(encoding="utf-8").splitlines()
    assert hypotheses == [en for _, en in HANDFUL]
    assert "BLEU 100.00" in result.stdout
    # Streaming to stdout (greedy), BLEU on stderr; our score() is sacrebleu's.
    result = translate(
        f"ckpt_path={best_checkpoint(run)}",
        f"input={source}",
        "beam=1",
        f"reference={reference}",
        cwd=tmp_path,
    )
    assert result.stdout.splitlines() == hypotheses
    assert "BLEU" in result.stderr


def test_score_is_sacrebleus_corpus_bleu_with_the_target_languages_tokenizer():
    hyps, refs = ["the cat sat on a mat.", "he is here!"], ["the cat sat on the mat.", "he's here!"]
    assert score(hyps, refs, "en")["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    zh_h, zh_r = ["我喜欢猫。", "他有书"], ["我喜欢狗。", "他有书。"]
    expected = sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="zh").score
    assert score(zh_h, zh_r, "zh")["bleu"] == expected
    assert expected != sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="13a").score
    assert score(refs, refs, "en") == pytest.approx({"bleu": 100.0, "chrf": 100.0})


def tampered(run, path, change):
    checkpoint = torch.load(best_checkpoint(run), map_location="cpu", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


def test_translate_refuses_bad_input_and_checkpoints_in_one_line(reencoder_run, tmp_path, capsys):
    _, run = reencoder_run
    good = tmp_path / "in.zh"
    good.write_text("我喜欢猫。\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(best_checkpoint(run).read_bytes()[:1000])
    other_task = tmp_path / "other_task.ckpt"
    tampered(run, other_task, lambda c: c.update(gridlstm_task="language_model"))
    marker = tmp_path / "pwned"

    def evil(checkpoint):
        checkpoint["hyper_parameters"]["net"]["_target_"] = "pathlib.Path.touch"
        checkpoint["hyper_parameters"]["net"]["self"] = str(marker)

    tampered(run, tmp_path / "code.ckpt", evil)
    ckpt = best_checkpoint(run)
    cases = [
        ([f"ckpt_path={tmp_path / 'nope.ckpt'}", f"input={good}"], "no such file"),
        ([f"ckpt_path={ckpt}", f"input={tmp_path / 'nope.txt'}"], "input file"),
        ([f"ckpt_path={ckpt}", f"input={latin1}"], "is not UTF-8"),
        ([f"ckpt_path={truncated}", f"input={good}"], "not a readable checkpoint"),
        ([f"ckpt_path={other_task}", f"input={good}"], "not a translation checkpoint"),
        ([f"ckpt_path={tmp_path / 'code.ckpt'}", f"input={good}"], "is not one of the suite's net"),
        ([f"ckpt_path={ckpt}", f"input={good}", "beam=0"], "beam must be >= 1"),
        ([f"ckpt_path={ckpt}", f"input={good}", "bean=3"], "unknown argument 'bean=3'"),
        ([f"ckpt_path={ckpt}", f"input={good}", f"reference={latin1}"], "reference file"),
        ([f"ckpt_path={ckpt}", f"input={good}", f"output={good}"], "overwrite the input"),
    ]
    for args, message in cases:  # in process: the same main() as the command
        with pytest.raises(SystemExit) as exit_:
            translate_main([str(a) for a in args])
        stderr = capsys.readouterr().err
        assert exit_.value.code == 2, (args, stderr)
        assert message in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1, stderr
    assert not marker.exists()  # the checkpoint's config never ran code
    assert good.read_text(encoding="utf-8") == "我喜欢猫。\n"


def test_evaluate_scores_with_the_checkpoints_tokenizers_and_refuses_a_new_split(
    reencoder_run, tmp_path, monkeypatch, capsys
):
    """evaluate rebuilds the data with the tokenizers stored in the checkpoint (training new
    ones would give other token ids silently) and reproduces the run's own test metrics;
    an override of what the model was trained on is one line, exit 2."""
    import gridlstm.data.translation as translation_data
    from gridlstm.evaluate import main as evaluate_main

    metrics, run = reencoder_run
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        evaluate_main([f"ckpt_path={best_checkpoint(run)}", "task.datamodule.split_seed=1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "task.datamodule.split_seed: cannot change after training" in err

    def no_training(*args, **kwargs):
        raise AssertionError("evaluate trained a tokenizer")

    monkeypatch.setattr(translation_data, "train_tokenizer", no_training)
    evaluate_main([f"ckpt_path={best_checkpoint(run)}", "out=scored"])
    scored = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    for key in ("val/loss", "val/bleu", "test/bleu", "test/chrf"):
        assert scored[key] == pytest.approx(metrics[key], abs=1e-5), key


def test_translation_data_encodes_with_given_tokenizers(tmp_path):
    """Two splits train tokenizers with the same vocabulary size but other token ids; given
    the first split's tokenizers, the second encodes exactly as the first did."""
    from gridlstm.data import TranslationDataModule
    from tests.conftest import write_pairs

    path = write_pairs(tmp_path / "pairs.tsv", count=80)
    options = dict(path=path, val_size=10, test_size=10, src_vocab_size=280, tgt_vocab_size=280)
    first = TranslationDataModule(**options, split_seed=0)
    other = TranslationDataModule(**options, split_seed=1)
    sentence = [toy_pairs(1, seed=9)[0][0]]
    ids = first.src_tokenizer.encode_batch(sentence)[0].ids
    assert other.src_tokenizer.encode_batch(sentence)[0].ids != ids  # why it matters
    kwargs = first.module_kwargs()
    given = TranslationDataModule(
        **options, split_seed=1, **TranslationDataModule.stored_options(kwargs)
    )
    assert given.src_tokenizer.encode_batch(sentence)[0].ids == ids
    assert given.module_kwargs() == {**kwargs}

"""Checkpoints saved by 0.1 still load and evaluate, with the scores the
old code gave (tests/data: written by gridlstm 0.1.0, commit 74c940c; see its .json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gridlstm import evaluate

DATA = Path(__file__).parent / "data"
SAVED = DATA / "addition_stacked_lstm_v0.1.ckpt"


def scores(out: Path) -> dict[str, float]:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


def test_a_checkpoint_saved_before_the_move_evaluates_as_it_did(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = json.loads((DATA / "addition_stacked_lstm_v0.1.json").read_text())
    expected.pop("made_by")
    evaluate.main([f"ckpt_path={SAVED}", f"out={tmp_path / 'scores'}"])
    assert scores(tmp_path / "scores") == pytest.approx(expected, abs=1e-6)
    made = json.loads((tmp_path / "scores" / "metrics.json").read_text())["provenance"]
    assert made["code"]["commit"] and made["versions"]["torch"] and made["machine"]["cpu"]


def test_a_class_named_by_a_module_path_from_before_0_2_is_refused_naming_its_path(
    tmp_path, monkeypatch, capsys
):
    """The 0.2 module aliases are retired: a stored ``_target_`` naming a class by the module
    that defined it before the move (``gridlstm.nn.stacked.StackedLSTM``; the suite's
    configs always named ``gridlstm.nn.StackedLSTM``) is one line naming the current path."""
    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(SAVED, weights_only=True)
    old = "gridlstm.nn.stacked.StackedLSTM"
    checkpoint["hyper_parameters"]["net"]["_target_"] = old
    checkpoint["gridlstm_config"]["model"]["net"]["_target_"] = old
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    with pytest.raises(SystemExit, match="2"):
        evaluate.main([f"ckpt_path={moved}", f"out={tmp_path / 'scores'}"])
    err = capsys.readouterr().err
    assert f"_target_='{old}' is not one of the suite's net classes" in err
    assert "(the suite's StackedLSTM is gridlstm.nn.StackedLSTM)" in err
    assert err.count("\n") == 1 and not (tmp_path / "scores").exists()


def test_evaluate_device_replaces_the_stored_accelerator(tmp_path, monkeypatch, capsys):
    """``device=`` is the same option as in sample, translate and bench: it wins over the
    run's stored (or overridden) accelerator, and a missing GPU is one line."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="2"):
        evaluate.main([f"ckpt_path={SAVED}", "hardware.accelerator=gpu", f"out={tmp_path / 'a'}"])
    assert "no CUDA GPU is available" in capsys.readouterr().err
    evaluate.main(
        [f"ckpt_path={SAVED}", "hardware.accelerator=gpu", "device=cpu", f"out={tmp_path / 'b'}"]
    )
    assert (tmp_path / "b" / "metrics.json").is_file()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="2"):
        evaluate.main([f"ckpt_path={SAVED}", "device=cuda", f"out={tmp_path / 'c'}"])
    assert "device=cuda: no CUDA device is available" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

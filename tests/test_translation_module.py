"""The translation module: dev translations are shown per validation (a W&B table in the
offline run folder; the console log without W&B), and a checkpoint never names code."""

from __future__ import annotations

import json
import logging

import pytest
from lightning.pytorch.loggers import WandbLogger

from gridlstm.data import TranslationDataModule
from gridlstm.tasks import TranslationModule
from gridlstm.tasks.translation import build_net
from tests.conftest import quiet_trainer, write_pairs

NET = {"_target_": "gridlstm.nn.Reencoder", "hidden_size": 8, "num_layers": 1}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def small_data(tmp_path) -> TranslationDataModule:
    return TranslationDataModule(
        write_pairs(tmp_path / "p.tsv", 40),
        val_size=4,
        test_size=4,
        src_vocab_size=270,
        tgt_vocab_size=270,
        batch_size=8,
    )


def small_run(tmp_path, **trainer):
    dm = small_data(tmp_path)
    module = TranslationModule(NET, optimizer=ADAM, log_samples=2, **dm.module_kwargs())
    quiet_trainer(max_steps=4, num_sanity_val_steps=0, **trainer).fit(module, datamodule=dm)
    return module


def test_dev_translations_go_to_a_wandb_table_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    try:
        small_run(tmp_path, logger=logger)
    finally:
        import wandb

        wandb.finish()
    (table,) = tmp_path.glob("wandb/offline-run-*/files/media/table/val/samples_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["step", "source", "output", "reference"]
    assert len(content["data"]) == 2
    assert all(row[0] == 4 and row[3] for row in content["data"])


def test_dev_translations_are_logged_to_the_console_without_wandb(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gridlstm.tasks.showcase"):
        small_run(tmp_path)
    shown = [r.message for r in caplog.records if "| reference: " in r.message]
    assert len(shown) == 2 and all(m.startswith("val/samples | step: 4 | source: ") for m in shown)


def test_only_the_suites_translation_models_are_built():
    allowed = (
        "allowed: gridlstm.nn.AttentionSeq2Seq, gridlstm.nn.Reencoder, "
        "gridlstm.nn.TransformerSeq2Seq"
    )
    for target in ("os.system", "gridlstm.nn.StackedLSTM", "gridlstm.nn.NoSuchModel"):
        with pytest.raises(ValueError, match=f"'{target}' is not a translation model; {allowed}"):
            build_net({"_target_": target, "command": "true"}, 10, 10)
    assert build_net({**NET, "hidden_size": 4}, 300, 300).hidden_size == 4

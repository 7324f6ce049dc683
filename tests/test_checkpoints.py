"""The checkpoint loader's rules on their own (the tools' ends: tests/test_bad_input.py)."""

from __future__ import annotations

import pytest
import torch

from gridlstm.run import checkpoints
from gridlstm.run.checkpoints import CONFIG_TARGETS, HPARAM_TARGETS, CheckpointError, plain_tree

NET = {"_target_": "gridlstm.nn.Grid2dLSTM", "input_size": 4, "hidden_size": 4}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def config(**changes):
    tree = {
        "task": {
            "datamodule": {"_target_": "gridlstm.data.AdditionDataModule", "digits": 3},
            "module": {"_target_": "gridlstm.tasks.AlgorithmicSequenceModule"},
        },
        "model": {"net": dict(NET)},
        "optim": {"optimizer": dict(ADAM), "scheduler": None},
    }
    tree.update(changes)
    return tree


def test_the_suites_own_config_passes_and_comes_back_as_plain_data():
    tree = config(seed=3, width="${model.net.hidden_size}")
    assert plain_tree(tree, CONFIG_TARGETS, "cfg") == {**tree, "width": 4}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"net": {**NET, "_target_": "os.system"}}}, "'os.system' is not one of"),
        (
            {"model": {"net": {**NET, "x": {"_target_": "gridlstm.nn.GridLSTM"}}}},
            "model.net.x._target_ is not allowed there",
        ),  # suite classes only where they go
        ({"model": {"net": {**NET, "x": [{"y": [ADAM]}]}}}, "x[0].y[0]._target_ is not allowed"),
        ({"model": {"net": {**NET, "_recursive_": True}}}, "_recursive_ is not allowed there"),
        ({"model": {"net": {**NET, "_partial_": True}}}, "_partial_ is not allowed there"),
        ({"callbacks": {"x": {"_target_": "gridlstm.nn.GridLSTM"}}}, "callbacks.x._target_"),
        ({"model": "${x}", "x": {"net": {**NET, "_target_": "builtins.exec"}}}, "'builtins.exec'"),
        ({"model": {"net": {**NET, "input_size": "${oc.env:HOME}"}}}, "resolver 'oc.env'"),
        (  # oc.create is resolved (pure), and what it creates is checked like any node
            {"model": {"net": {**NET, "input_size": "${oc.create:{_target_: os.system}}"}}},
            "model.net.input_size._target_ is not allowed there",
        ),
        (
            {"optim": {"optimizer": ADAM, "scheduler": "${oc.create:{_target_: os.system}}"}},
            "'os.system' is not one of",
        ),
        (
            {"optim": {"optimizer": ADAM, "scheduler": "${oc.create:{x: ${oc.env:HOME}}}"}},
            "resolver 'oc.env'",
        ),
        ({"model": {"net": {**NET, "input_size": "${..missing}"}}}, "cannot be read as a config"),
        ({"optim": {"optimizer": {**ADAM, "_target_": "torch.load"}}}, "'torch.load' is not one"),
        (
            {"task": {"datamodule": {**NET}}},
            "'gridlstm.nn.Grid2dLSTM' is not one of the suite's datamodule classes",
        ),  # a class of the suite, at the wrong position
    ],
)
def test_a_target_anywhere_else_is_refused(change, message):
    with pytest.raises(CheckpointError, match=None) as error:
        plain_tree(config(**change), CONFIG_TARGETS, "cfg")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_default_experiments_scheduler_written_through_oc_create_comes_back_as_data():
    """conf/experiment_task/default_addition.yaml writes its LinearLR through oc.create (so a
    command-line scheduler replaces it whole): a stored run of it must still be readable."""
    linear = (
        "${oc.create:{_target_: torch.optim.lr_scheduler.LinearLR, _partial_: true, "
        "end_factor: 0.2, total_iters: ${trainer.max_steps}}}"
    )
    tree = config(optim={"optimizer": dict(ADAM), "scheduler": linear}, trainer={"max_steps": 30})
    assert plain_tree(tree, CONFIG_TARGETS, "cfg")["optim"]["scheduler"] == {
        "_target_": "torch.optim.lr_scheduler.LinearLR",
        "_partial_": True,
        "end_factor": 0.2,
        "total_iters": 30,
    }


def test_text_from_an_escaped_interpolation_stays_text():
    tree = plain_tree(config(note="\\${oc.env:HOME}"), CONFIG_TARGETS, "cfg")
    assert tree["note"] == "\\${oc.env:HOME}"  # escaped again: resolving it again reads text
    from omegaconf import OmegaConf

    assert OmegaConf.create(tree).note == "${oc.env:HOME}"


def test_classes_are_known_by_their_exported_and_defining_paths():
    net = checkpoints.suite_classes()["net"]
    assert net["gridlstm.nn.Grid2dLSTM"] is net["gridlstm.nn.grid2d.Grid2dLSTM"]
    assert "torch.optim.AdamW" in checkpoints.suite_classes()["optimizer"]
    assert "torch.optim.lr_scheduler.CosineAnnealingLR" in checkpoints.suite_classes()["scheduler"]


def test_hyper_parameters_resolve_only_the_configs_and_keep_data_as_stored():
    """A tokenizer (JSON text) may hold '${' when the corpus does: it is data, never read as
    a config, while the backbone's config is resolved and checked."""
    tokenizer = '{"model": {"vocab": {"${x}": 5, "${oc.env:HOME}": 6}}}'
    checkpoint = {
        "hyper_parameters": {
            "net": {**NET, "hidden_size": "${.input_size}"},
            "optimizer": ADAM,
            "src_tokenizer": tokenizer,
        }
    }
    hparams = checkpoints.hyper_parameters(checkpoint, "x.ckpt")
    assert hparams["src_tokenizer"] == tokenizer and hparams["net"]["hidden_size"] == 4
    checkpoint["hyper_parameters"]["vocab"] = [{"_target_": "gridlstm.nn.GridLSTM"}]
    with pytest.raises(CheckpointError, match=r"vocab\[0\]._target_ is not allowed there"):
        checkpoints.hyper_parameters(checkpoint, "x.ckpt")
    assert set(HPARAM_TARGETS) == {("net",), ("optimizer",), ("scheduler",)}


def test_read_refuses_pickled_objects_and_non_checkpoints(tmp_path):
    torch.save({"state_dict": {}, "x": torch.nn.ReLU()}, tmp_path / "module.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        checkpoints.read(tmp_path / "module.ckpt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        checkpoints.read(tmp_path / "list.ckpt")
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "fine.ckpt")
    assert checkpoints.read(tmp_path / "fine.ckpt")["state_dict"]["w"].tolist() == [1.0, 1.0]


def test_build_calls_the_allowed_class_with_plain_arguments():
    module = checkpoints.build({**NET, "num_layers": 1, "batch_first": True}, "net")
    assert type(module).__name__ == "Grid2dLSTM"
    with pytest.raises(CheckpointError):
        checkpoints.build({"_target_": "os.system", "command": "true"}, "net")


def test_weights_made_under_another_priority_are_one_line_naming_it():
    """The suite's weight loader reports a grid's function-defining option like a shape
    mismatch: one line, nothing loaded (nn.options_state)."""
    import torch

    from gridlstm.nn import GridLSTM
    from gridlstm.run.checkpoints import load_weights

    none = GridLSTM(3, 4, 2, 1, tied=True, priority="none")
    depth = GridLSTM(3, 4, 2, 1, tied=True, priority="depth")
    before = {k: v.clone() for k, v in depth.state_dict().items() if torch.is_tensor(v)}
    problem = load_weights(depth, none.state_dict())
    assert problem is not None and "priority" in problem and "\n" not in problem
    assert all(torch.equal(depth.state_dict()[k], v) for k, v in before.items())
    assert load_weights(GridLSTM(3, 4, 2, 1, tied=True, priority="none"), none.state_dict()) is None

"""hardware.flush_denormal (`gridlstm.run.denormals`): subnormal floats flushed to zero on the
CPU where it can, said so where it cannot (the probe patched both ways), refused when not a
bool; off by default."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from gridlstm.run import denormals
from gridlstm.run.errors import ConfigError
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def _restore():
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize(
    ("supported", "line"),
    [
        (True, "subnormal floats: flushed to zero (hardware.flush_denormal=true)"),
        (
            False,
            "subnormal floats: kept; this CPU cannot flush them (hardware.flush_denormal=true)",
        ),
    ],
)
def test_the_run_says_what_it_does_with_subnormals_on_any_cpu(monkeypatch, supported, line):
    asked = []
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: asked.append(on) or supported)
    assert denormals.apply(True) == line
    assert denormals.apply(False) == "subnormal floats: kept (hardware.flush_denormal=false)"
    assert asked == [True, False]


def test_flushing_zeroes_a_subnormal_product_where_the_cpu_can():
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal
    assert (tiny * 1.0).item() != 0.0
    if denormals.apply(True).startswith("subnormal floats: flushed"):
        assert (tiny * 1.0).item() == 0.0
    else:  # a CPU without the mode: nothing changes, and the run said so
        assert (tiny * 1.0).item() != 0.0
    denormals.apply(False)
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0


@pytest.mark.parametrize("bad", ["maybe", 1, None])
def test_a_setting_that_is_not_a_bool_is_one_line(bad):
    with pytest.raises(ConfigError, match=r"hardware\.flush_denormal=.*: true or false$"):
        denormals.check(bad)


@pytest.mark.parametrize("hardware", ["cpu", "ddp_cpu"])
def test_off_by_default_so_a_resumed_run_computes_what_it_did(hardware):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hardware={hardware}"])
    assert cfg.hardware.flush_denormal is False

"""Comparison presets: models of one table get comparable recurrent parameter counts."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from gridlstm.launch import comparable_hidden
from gridlstm.nn import count_parameters
from tests.test_configs import compose_train


def test_comparable_hidden_formula():
    assert comparable_hidden("stacked_lstm", 4, False, 128) == 128
    assert comparable_hidden("grid2d_untied", 4, False, 128) == round(128 / 2**0.5)
    assert comparable_hidden("grid2d", 4, True, 128) == round(128 * 2**0.5)
    assert comparable_hidden("grid2d", 2, True, 128) == 128


@pytest.mark.parametrize("experiment", ["addition_cpu", "memorization_cpu"])
@pytest.mark.parametrize("layers", [2, 4])
def test_presets_give_comparable_parameter_counts(experiment, layers, tmp_path):
    counts = {}
    for model in ("stacked_lstm", "grid2d_untied", "grid2d"):
        cfg = compose_train(
            [f"experiment={experiment}", f"model={model}", f"model.net.num_layers={layers}"],
            tmp_path,
        )
        assert cfg.task.name == experiment.removesuffix("_cpu")
        counts[model] = count_parameters(instantiate(cfg.model.net))
    smallest, largest = min(counts.values()), max(counts.values())
    assert largest / smallest < 1.15, counts  # within 15% (input projections differ a bit)

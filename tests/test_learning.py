"""The default experiment visibly learns (slow: minutes on 2 CPU cores; ``-m slow``)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_default_experiment_learns_addition(cli):
    # The default config as a user runs it (minus W&B). Chance exact-match is 1e-4; when the
    # model "clicks" (0.97 with seed 1234, 0.11 with seed 7) varies, so this asks for learning.
    result = cli("logger=none", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["test/acc"] > 0.05, metrics
    assert metrics["test/digit_acc"] > 0.6, metrics

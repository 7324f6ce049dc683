"""The default experiment and the CPU presets visibly learn (slow: minutes on 2 CPU cores;
``-m slow``)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 7])
def test_default_experiment_learns_addition(cli, seed):
    # The default config as a user runs it (minus W&B), on two seeds. docs/default_experiment.md
    # publishes 20 seeds of the current default (test exact-match 0.995-1.000; seed 1: 0.999,
    # seed 7: 1.000). Chance is 1e-3 (2-digit operands, 3 answer digits).
    result = cli("logger=none", f"seed={seed}", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["test/acc"] >= 0.99, metrics


@pytest.mark.slow
def test_text_cpu_preset_learns_a_corpus(cli, tmp_path):
    from tests.conftest import write_corpus

    corpus = write_corpus(tmp_path / "corpus.txt", 200_000)
    result = cli(
        "experiment=text_cpu",
        f"task.path={corpus}",
        "logger=none",
        "trainer.max_steps=600",
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    # Uniform over bytes is 8 bits/char; the corpus is random words from a list of 10.
    assert metrics["test/bpc"] < 2.5, metrics


@pytest.mark.slow
def test_mnist_cpu_preset_learns_generated_digits(cli, tmp_path):
    from tests.conftest import write_mnist

    write_mnist(tmp_path / "mnist", train=3000, test=500)
    result = cli(
        "experiment=mnist_cpu",
        f"task.datamodule.data_dir={tmp_path / 'mnist'}",
        "task.datamodule.strict_sizes=false",
        "task.datamodule.val_size=500",
        "task.datamodule.train_size=2500",
        "trainer.max_steps=400",
        "logger=none",
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["test/error"] < 0.1, metrics

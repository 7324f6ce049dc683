"""The search stages' rule, as data: fewest samples to 0.99, then accuracy, then depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridlstm.analysis.job_records import read_jobs
from gridlstm.analysis.stages import as_cases, choices_markdown, choose, edge_cases
from gridlstm.analysis.studies.spec import expand, load_studies


def job(folder, name, overrides, **record):
    path = folder / "jobs" / name
    path.mkdir(parents=True)
    (path / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (path / "metrics.json").write_text(json.dumps({"status": "completed", **record}))


def test_each_family_and_budget_gets_its_fastest_then_best_then_shallowest_configuration(
    tmp_path,
):
    def jobs(model, budget, *settings):
        for layers, lr, record in settings:
            overrides = [
                f"model={model}",
                f"param_budget={budget}",
                f"model.net.num_layers={layers}",
                f"optim.optimizer.lr={lr}",
            ]
            job(tmp_path, f"{model}-{budget}-{layers}-{lr}", overrides, **record)

    solved = {"val/acc": 1.0}
    jobs(
        "grid1d",
        100,
        (4, 0.003, {"val/acc": 0.998, "val/samples_to_threshold": 96_000}),
        (2, 0.003, {**solved, "val/samples_to_threshold": 160_000}),
        (8, 0.001, {"val/acc": 0.5, "val/samples_to_threshold": None}),
    )
    # nobody solved: the highest accuracy, then fewer layers
    jobs(
        "tanh_net",
        100,
        (4, 0.001, {"val/acc": 0.6}),
        (2, 0.003, {"val/acc": 0.6}),
        (8, 0.003, {"val/acc": 0.55}),
    )
    jobs("tanh_net", 400, (16, 0.001, {"val/acc": 0.9}))
    job(tmp_path, "diverged", ["model=tanh_net", "param_budget=400"], status="diverged")
    chosen = choose(read_jobs(tmp_path), ["model", "param_budget"])
    picked = {
        group: (row["model.net.num_layers"], row["optim.optimizer.lr"])
        for group, row in chosen.items()
    }
    assert picked == {
        ("grid1d", "100"): ("4", "0.003"),  # fastest, though deeper
        ("tanh_net", "100"): ("2", "0.003"),
        ("tanh_net", "400"): ("16", "0.001"),
    }
    table = choices_markdown(read_jobs(tmp_path), ["model", "param_budget"])
    assert "(7)." in table.splitlines()[0]  # the diverged job is not counted
    assert table.splitlines()[4:] == [
        "| grid1d | 100 | 3 | 2 | num_layers 4, lr 0.003 | 96,000 | 0.998 | - | - | - |",
        "| tanh_net | 100 | 3 | 0 | num_layers 2, lr 0.003 | - | 0.600 | - | - | - |",
        "| tanh_net | 400 | 1 | 0 | num_layers 16, lr 0.001 | - | 0.900 | - | - | - |",
    ]


def test_the_choices_become_the_next_stages_cases_typed_and_in_group_order(tmp_path):
    for budget, layers in ((70400, 1), (17600, 8), (281600, 4)):
        overrides = [
            "model=relu_net",
            f"param_budget={budget}",
            f"model.net.num_layers={layers}",
            "optim.optimizer.lr=0.003",
        ]
        job(tmp_path, f"relu-{budget}", overrides, **{"val/acc": 1.0})
    groups = ["model", "param_budget"]
    cases = as_cases(choose(read_jobs(tmp_path), groups), groups)
    assert cases == [
        {
            "model": "relu_net",
            "param_budget": b,
            "model.net.num_layers": n,
            "optim.optimizer.lr": 0.003,
        }
        for b, n in ((17600, 8), (70400, 1), (281600, 4))
    ]


def test_a_rate_chosen_at_the_grids_edge_adds_the_rate_beyond_it_once(tmp_path):
    def run(model, layers, lr, acc):
        overrides = [f"model={model}", f"model.net.num_layers={layers}", f"optim.optimizer.lr={lr}"]
        job(tmp_path, f"{model}-{layers}-{lr}", overrides, **{"val/acc": acc})

    for lr, acc in ((0.0003, 0.2), (0.001, 0.5), (0.003, 0.9)):  # best at the top edge
        run("stacked_lstm", 2, lr, acc)
    for lr, acc in ((0.0003, 0.9), (0.001, 0.5), (0.003, 0.2)):  # best at the bottom edge
        run("grid2d", 8, lr, acc)
    for lr, acc in ((0.0003, 0.2), (0.001, 0.9), (0.003, 0.5)):  # inside: nothing to add
        run("grid2d_untied", 4, lr, acc)
    groups = ["model"]
    rows = read_jobs(tmp_path)
    assert edge_cases(rows, choose(rows, groups), groups) == [
        {"model": "grid2d", "model.net.num_layers": 8, "optim.optimizer.lr": 0.0001},
        {"model": "stacked_lstm", "model.net.num_layers": 2, "optim.optimizer.lr": 0.01},
    ]
    # once the neighbour ran (and lost), the rule names it no more
    run("stacked_lstm", 2, 0.01, 0.1)
    rows = read_jobs(tmp_path)
    assert edge_cases(rows, choose(rows, groups), groups) == [
        {"model": "grid2d", "model.net.num_layers": 8, "optim.optimizer.lr": 0.0001},
    ]
    # a neighbour that wins is a new edge: the next rate beyond it
    run("grid2d", 8, 0.0001, 0.95)
    rows = read_jobs(tmp_path)
    assert edge_cases(rows, choose(rows, groups), groups) == [
        {"model": "grid2d", "model.net.num_layers": 8, "optim.optimizer.lr": 3e-05},
    ]


def test_the_gpu_addition_study_gives_every_family_and_depth_its_own_rate(tmp_path):
    """addition_depth's GPU stage paper15 (scripts/gpu_studies.yaml) runs three rates over
    10x at every family and depth, one seed; its stated rule (choose per family and depth)
    names one rate per family and depth for seeds 2 and 3, and the edge rule's next rate
    where the choice sits at an end of the three."""
    root = Path(__file__).resolve().parents[1]
    study = load_studies(root / "scripts" / "gpu_studies.yaml")["addition_depth_paper15"]
    assert "seed=1" in study["overrides"]
    rates = study["grid"]["optim.optimizer.lr"]
    assert len(rates) == 3 and max(rates) / min(rates) == pytest.approx(10)
    groups = ["model", "model.net.num_layers"]
    combos = [j.combo for j in expand("addition15", study, tmp_path / "runs", False)]
    for i, combo in enumerate(combos):
        # the fastest rate: the highest for the tied grid, the middle one for the others
        best = max(rates) if combo["model"] == "grid2d" else sorted(rates)[1]
        samples = 100_000 if combo["optim.optimizer.lr"] == best else 200_000 + i
        overrides = [f"{k}={v}" for k, v in combo.items()]
        record = {"val/acc": 1.0, "val/samples_to_threshold": samples}
        job(tmp_path, f"job{i}", overrides, **record)
    rows = read_jobs(tmp_path)
    chosen = choose(rows, groups)
    cases = as_cases(chosen, groups)
    depths = study["grid"]["model.net.num_layers"]
    assert len(cases) == len(study["grid"]["model"]) * len(depths)
    for case in cases:
        expected = max(rates) if case["model"] == "grid2d" else sorted(rates)[1]
        assert case["optim.optimizer.lr"] == expected
    edges = edge_cases(rows, chosen, groups)
    assert {(c["model"], c["optim.optimizer.lr"]) for c in edges} == {("grid2d", 0.01)}
    assert len(edges) == len(depths)

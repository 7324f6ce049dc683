"""The frontier rule: a setting is solved when 2 of 3 runs (1 of 1) pass on test; a cell's
runs gather over the stages by seed."""

from __future__ import annotations

import csv
import io

import pytest

from gridlstm.analysis.frontier import (
    AS_RAN,
    Ladder,
    csv_text,
    deciding_seeds,
    frontiers,
    markdown,
    missing_seeds,
    seed_cases,
    sources_of,
    verdicts_markdown,
)
from gridlstm.analysis.lr_check import (
    best_rate_cells,
    best_rate_frontiers,
    best_rate_intro,
    best_rate_sources,
    learning_rate_cases,
    learning_rate_frontier_cases,
)
from tests.test_stages import job as stage_job

KEY = "task.datamodule.bits"  # the setting these frontiers run over
LADDER = Ladder(KEY)


def job(folder, name, overrides, **record):
    """A run whose validation and test accuracy agree, unless the test gives both."""
    if "test/acc" in record:
        record.setdefault("val/acc", record["test/acc"])
    stage_job(folder, name, overrides, **record)


def runs(folder, model, budget, bits, accs, params=100, macs=1000, first_seed=None):
    """One job per accuracy: seeds first_seed, first_seed + 1, ...; with no first_seed, one
    job with no seed override (the seed of its experiment file, claims_parity_sizes: 1)."""
    seeds = [None] if first_seed is None else range(first_seed, first_seed + len(accs))
    for seed, acc in zip(seeds, accs, strict=True):
        overrides = [
            "experiment=claims_parity_sizes",
            f"model={model}",
            "model.net.num_layers=4",
            f"param_budget={budget}",
            f"task.datamodule.bits={bits}",
        ] + ([] if seed is None else [f"seed={seed}"])
        record = {"test/acc": acc, "params": params, "macs_per_sample": macs}
        job(folder, f"{model}-{budget}-{bits}-{seed}", overrides, **record)


def test_largest_solved_per_family_and_size_with_runs_gathered_by_seed(tmp_path):
    one, seeds = tmp_path / "frontier", tmp_path / "seeds"
    runs(one, "a", 400, 12, [1.0], params=410)
    runs(one, "a", 400, 14, [0.995])
    runs(one, "a", 400, 16, [0.5])
    runs(seeds, "a", 400, 14, [0.5, 0.5], first_seed=2)  # 1 of 3: not solved after all
    runs(one, "a", 100, 12, [1.0])
    runs(one, "a", 100, 14, [1.0], params=101, macs=5000)
    runs(one, "b", 100, 12, [0.5])  # seed 1 (the experiment's) ...
    runs(one, "b", 100, 14, [0.6])
    # ... rerun with seed 1 named: it replaces the first stage's run, 2 of 3
    runs(seeds, "b", 100, 12, [1.0, 0.99, 0.5], params=99, macs=2000, first_seed=1)
    runs(one, "c", 100, 12, [0.5])
    found = frontiers([one, seeds], LADDER)
    assert [(f.family, f.size, f.largest_solved, f.after, f.runs) for f in found] == [
        ("a", "100", 14, None, 1),
        ("a", "400", 12, 14, 1),
        ("b", "100", 12, 14, 3),
        ("c", "100", None, 12, 0),
    ]
    assert (found[0].params, found[0].macs, found[1].params) == (101, 5000, 410)
    assert (found[2].params, found[2].macs, found[3].params) == (99, 2000, None)
    page = markdown(found, ["one", "seeds"])
    assert page.splitlines()[0].startswith("From the jobs in: one, seeds (")
    assert sources_of(page) == ["one", "seeds"]
    assert page.splitlines()[5] == "| a | 400 | 12 | 1 | 410 | 1,000 | 14 | num_layers 4 |"
    rows = list(csv.DictReader(io.StringIO(csv_text(found))))
    assert rows[1] == {
        "family": "a",
        "size": "400",
        "largest_solved": "12",
        "after": "14",
        "params": "410.0",
        "macs_per_sample": "1000.0",
        "runs": "1",
    }

    # the seeds stage: the largest setting solved and the one after it, with the case's config
    assert [
        (c["model"], c["param_budget"], c["task.datamodule.bits"])
        for c in seed_cases(found, LADDER)
    ] == [
        ("a", 100, 14),
        ("a", 400, 12),
        ("a", 400, 14),
        ("b", 100, 12),
        ("b", 100, 14),
        ("c", 100, 12),
    ]


def test_verdicts_compare_the_families_at_each_size_and_setting_two_of_them_ran(tmp_path):
    one, seeds = tmp_path / "frontier", tmp_path / "seeds"
    runs(one, "a", 100, 14, [1.0])
    runs(seeds, "a", 100, 14, [0.998, 1.0], first_seed=2)
    runs(one, "b", 100, 14, [0.55])
    runs(seeds, "b", 100, 14, [0.51, 0.53], first_seed=2)
    runs(one, "a", 100, 16, [0.5])  # only a ran k = 16: nothing to compare
    runs(one, "c", 400, 14, [0.99])
    runs(seeds, "c", 400, 14, [0.5, 0.98], first_seed=2)
    runs(one, "b", 400, 14, [0.6])
    runs(seeds, "b", 400, 14, [0.7, 0.9], first_seed=2)
    text = verdicts_markdown([one, seeds], ["one", "seeds"], Ladder(KEY, metric=AS_RAN))
    lines = text.splitlines()
    assert lines[0] == "From the jobs in: one, seeds (runs gathered by seed)."
    sections = [line for line in lines if line.startswith("## ")]
    assert sections == [
        "## param_budget=100, task.datamodule.bits=14",
        "## param_budget=400, task.datamodule.bits=14",
    ]
    # a: 3 seeds at ~1.0 against b's 3 at chance: beyond the spread; c against b: within it
    assert "**model=a**, 0.9993 +- 0.0012 (n = 3)" in text
    assert "| model=b | 0.5300 +- 0.0200 | 3 | +0.4693 |" in text
    assert (
        text.split("## param_budget=100")[1]
        .split("\n## ")[0]
        .rstrip()
        .endswith("| beyond the seed spread |")
    )
    assert "**model=c**, 0.8233 +- 0.2801 (n = 3)" in text
    assert text.rstrip().endswith("| within the seed spread |")


def test_the_fill_stage_runs_each_seed_missing_at_a_frontier_and_the_setting_after(tmp_path):
    """Seeds can move a frontier: the fill names the seeds still missing there."""
    one, seeds = tmp_path / "frontier", tmp_path / "seeds"
    runs(one, "a", 100, 12, [1.0])
    runs(one, "a", 100, 14, [1.0])
    runs(seeds, "a", 100, 14, [0.5, 0.6], first_seed=2)  # the frontier moves down to 12
    runs(one, "a", 100, 16, [0.5])
    runs(one, "b", 100, 12, [1.0])
    runs(seeds, "b", 100, 12, [1.0, 1.0], first_seed=2)  # solved; the sweep stopped at 12
    runs(one, "c", 100, 12, [1.0])
    runs(seeds, "c", 100, 12, [1.0, 1.0], first_seed=2)
    runs(one, "c", 100, 14, [0.5])
    runs(seeds, "c", 100, 14, [0.5, 0.5], first_seed=2)  # c: done
    found = [
        (c["model"], c["task.datamodule.bits"], c["seed"])
        for c in missing_seeds([one, seeds], [12, 14, 16, 20], LADDER)
    ]
    assert found == [("a", 12, 2), ("a", 12, 3), ("b", 14, 1), ("b", 14, 2), ("b", 14, 3)]
    case = missing_seeds([one, seeds], [12, 14], LADDER)[0]
    assert case == {
        "model": "a",
        "param_budget": 100,
        "model.net.num_layers": 4,
        "task.datamodule.bits": 12,
        "seed": 2,
    }


def test_more_seeds_go_where_one_family_stops_solving_to_every_family_that_ran_there(tmp_path):
    one, seeds = tmp_path / "frontier", tmp_path / "seeds"
    runs(one, "lstm", 100, 12, [1.0, 1.0, 1.0], first_seed=1)
    runs(one, "lstm", 100, 14, [1.0, 0.5, 0.5], first_seed=1)  # stops solving at 14
    runs(one, "net", 100, 12, [1.0])
    runs(one, "net", 100, 14, [1.0, 1.0, 0.99], first_seed=1)
    runs(seeds, "net", 100, 16, [0.5])  # past 14: not asked
    runs(one, "lstm", 400, 12, [1.0, 1.0], first_seed=1)
    runs(one, "lstm", 400, 14, [0.5], first_seed=1)
    runs(one, "net", 400, 20, [1.0])  # the net never ran 14 at 400: nothing to compare
    found = [
        (c["model"], c["param_budget"], c["task.datamodule.bits"], c["seed"])
        for c in deciding_seeds([one, seeds], "lstm", range(1, 5), LADDER)
    ]
    assert found == [
        ("lstm", 100, 14, 4),
        ("lstm", 400, 14, 2),
        ("lstm", 400, 14, 3),
        ("lstm", 400, 14, 4),
        ("net", 100, 14, 4),
    ]


def test_the_learning_rate_check_tries_each_neighbour_of_the_chosen_rate_where_a_family_stops(
    tmp_path,
):
    """One step down and one up in the grid, at the setting after the frontier; a choice at
    the search's edge is tried beyond it; a family that never stopped solving is not asked."""

    def lr_runs(model, lr, bits, accs):
        for seed, acc in enumerate(accs, start=1):
            overrides = [
                f"model={model}",
                "model.net.num_layers=4",
                f"optim.optimizer.lr={lr}",
                "param_budget=100",
                f"task.datamodule.bits={bits}",
                f"seed={seed}",
            ]
            job(tmp_path, f"{model}-{bits}-{seed}", overrides, **{"test/acc": acc})

    lr_runs("edge", 0.003, 12, [1.0, 1.0, 1.0])
    lr_runs("edge", 0.003, 14, [0.5, 0.5, 1.0])  # stops at 14
    lr_runs("middle", 0.001, 12, [0.5, 0.5, 0.5])  # solves nothing: asked at 12
    lr_runs("never", 0.001, 12, [1.0, 1.0, 1.0])  # no setting after it ran
    grid = [0.01, 0.0001, 0.0003, 0.001, 0.003]  # any order
    found = frontiers([tmp_path], LADDER)
    cases = learning_rate_cases(found, grid, LADDER)
    assert [(c["model"], c["optim.optimizer.lr"], c["task.datamodule.bits"]) for c in cases] == [
        ("edge", 0.001, 14),
        ("edge", 0.01, 14),
        ("middle", 0.0003, 12),
        ("middle", 0.003, 12),
    ]
    assert cases[0] == {
        "model": "edge",
        "param_budget": 100,
        "model.net.num_layers": 4,
        "optim.optimizer.lr": 0.001,
        "task.datamodule.bits": 14,
        "seed": 1,
    }
    assert [
        c["optim.optimizer.lr"] for c in learning_rate_cases(found, [0.001, 0.003], LADDER)
    ] == [
        0.001,  # edge: the grid has no step above 0.003
        0.003,  # middle: none below 0.001
    ]
    with pytest.raises(ValueError, match=r"edge at param_budget=100: learning rate 0.003 is not"):
        learning_rate_cases(found, [0.0001, 0.001], LADDER)


def test_a_checked_rate_that_solved_goes_on_through_the_frontier_rule_in_that_rate(tmp_path):
    """Its missing seeds at the setting it solved and at the next; the chosen rate's runs in
    the same folders (the same family, size and setting) are another configuration's."""
    check, seeds = tmp_path / "lr", tmp_path / "lr_seeds"

    def at(folder, lr, bits, accs, first_seed=1):
        for seed, acc in enumerate(accs, start=first_seed):
            overrides = [
                "model=a",
                "param_budget=100",
                "model.net.num_layers=4",
                f"optim.optimizer.lr={lr}",
                f"task.datamodule.bits={bits}",
                f"seed={seed}",
            ]
            job(folder, f"{lr}-{bits}-{seed}", overrides, **{"test/acc": acc})

    at(check, 0.001, 14, [1.0])  # solves where the chosen 0.003 stopped
    at(seeds, 0.001, 14, [1.0, 0.5], first_seed=2)  # 2 of 3: the frontier moves with it
    at(check, 0.003, 14, [0.5, 0.5, 0.5])  # the chosen rate's runs: not this rate's
    at(check, 0.01, 14, [0.5])  # solved nothing: done
    cases = learning_rate_frontier_cases([check, seeds], [12, 14, 16, 20], LADDER)
    assert [(c["optim.optimizer.lr"], c["task.datamodule.bits"], c["seed"]) for c in cases] == [
        (0.001, 16, 1),
        (0.001, 16, 2),
        (0.001, 16, 3),
    ]
    assert cases[0]["model.net.num_layers"] == 4
    again = tmp_path / "again"  # a later folder's seed 2, at chance: 1 of 3, not moved
    at(again, 0.001, 14, [0.5], first_seed=2)
    assert learning_rate_frontier_cases([check, seeds, again], [12, 14, 16, 20], LADDER) == []


def test_each_family_is_stated_at_the_rate_that_solves_the_largest_setting(tmp_path):
    """A checked rate replaces the chosen one only where it solves a larger setting (a tie
    keeps the chosen rate), and its runs are never pooled with another rate's."""
    chosen, checked = tmp_path / "frontier", tmp_path / "lr"

    def at(folder, model, lr, bits, accs):
        for seed, acc in enumerate(accs, start=1):
            overrides = [
                f"model={model}",
                "param_budget=100",
                "model.net.num_layers=4",
                f"optim.optimizer.lr={lr}",
                f"task.datamodule.bits={bits}",
                f"seed={seed}",
            ]
            record = {"test/acc": acc, "params": 100, "macs_per_sample": 10}
            job(folder, f"{model}-{lr}-{bits}-{seed}", overrides, **record)

    at(chosen, "a", 0.003, 12, [1.0, 1.0, 1.0])
    at(chosen, "a", 0.003, 14, [1.0, 0.5, 0.5])  # chosen: stops at 14
    at(checked, "a", 0.001, 14, [1.0, 1.0, 0.5])  # 2 of 3: 14 solved at 0.001
    at(checked, "a", 0.001, 16, [0.5, 0.5, 0.5])
    at(checked, "a", 0.01, 14, [0.5])
    at(chosen, "b", 0.003, 14, [1.0, 1.0, 1.0])
    at(checked, "b", 0.001, 14, [1.0])  # a tie: the chosen rate stays
    at(chosen, "c", 0.001, 12, [1.0, 1.0, 1.0])
    at(checked, "c", 0.0003, 14, [1.0, 0.5, 0.5])  # 1 of 3: not solved
    found = best_rate_frontiers([chosen], [checked], LADDER)
    assert [(r.family, r.largest_solved, r.after, rate) for r, rate in found] == [
        ("a", 14, 16, 0.001),
        ("b", 14, None, None),
        ("c", 12, None, None),
    ]
    assert found[0][0].chosen()["optim.optimizer.lr"] == 0.001
    runs = best_rate_cells([chosen], [checked], found, LADDER)
    assert sorted(runs) == [("a", "100", 14), ("a", "100", 16), ("b", "100", 14), ("c", "100", 12)]
    assert [r["test/acc"] for r in runs[("a", "100", 14)]] == [1.0, 1.0, 0.5]  # 0.001's alone
    intro = best_rate_intro(["x/frontier", "x/seeds"], ["x/lr", "x/lr_seeds"])
    sources = (["x/frontier", "x/seeds"], ["x/lr", "x/lr_seeds"])
    assert best_rate_sources(intro) == (*sources, [])
    assert best_rate_sources(best_rate_intro(*sources, ["x/decide"])) == (*sources, ["x/decide"])
    assert markdown([r for r, _ in found], [], intro=intro).startswith(intro + "\n")

    # a deciding stage: seeds 4-5 of every family, each at its own best rate, in one folder
    # that also holds a run of family a at its chosen rate (0.003) and one of b at 0.001
    decide = tmp_path / "decide"
    for model, lr, acc in [("a", 0.001, 0.9), ("b", 0.003, 0.8), ("c", 0.001, 0.7)]:
        for seed in (4, 5):
            overrides = ["model=" + model, "param_budget=100", "model.net.num_layers=4"]
            overrides += [f"optim.optimizer.lr={lr}", "task.datamodule.bits=14", f"seed={seed}"]
            job(decide, f"{model}-{lr}-{seed}", overrides, **{"test/acc": acc, "params": 100})
    at(decide, "a", 0.003, 14, [0.0])  # not a's best rate: stays out
    at(decide, "b", 0.001, 14, [0.0])  # not b's chosen rate: stays out
    more = best_rate_cells([chosen], [checked], found, LADDER, more=[decide])
    assert sorted(r["test/acc"] for r in more[("a", "100", 14)]) == [0.5, 0.9, 0.9, 1.0, 1.0]
    assert sorted(r["test/acc"] for r in more[("b", "100", 14)]) == [0.8, 0.8, 1.0, 1.0, 1.0]
    assert [r["test/acc"] for r in more[("c", "100", 14)]] == [0.7, 0.7]  # a setting of its own
    assert more[("a", "100", 16)] == runs[("a", "100", 16)]


def test_further_seeds_need_a_rate_to_join(tmp_path):
    """A chosen configuration that names no learning rate (its preset's default) cannot take
    a deciding stage's seeds: which rate they must match is unknown, so it says so."""
    chosen, checked, decide = tmp_path / "frontier", tmp_path / "lr", tmp_path / "decide"
    runs(chosen, "a", 100, 12, [1.0, 1.0, 1.0], first_seed=1)
    runs(checked, "a", 100, 14, [0.5], first_seed=1)
    runs(decide, "a", 100, 12, [1.0], first_seed=4)
    found = best_rate_frontiers([chosen], [checked], LADDER)
    assert found[0][1] is None
    assert len(best_rate_cells([chosen], [checked], found, LADDER)[("a", "100", 12)]) == 3
    with pytest.raises(ValueError, match="names no optim.optimizer.lr"):
        best_rate_cells([chosen], [checked], found, LADDER, more=[decide])


def test_the_frontier_rules_choose_on_validation_unless_told_the_split_a_stage_ran_on(tmp_path):
    """A rule that read the test split would choose with the numbers a verdict is decided on:
    the rules' default is validation; `AS_RAN` restates the committed stages that chose on test."""
    folder = tmp_path / "stage"
    for seed in (1, 2, 3):
        overrides = ["model=a", "param_budget=100", "task.datamodule.bits=12", f"seed={seed}"]
        job(folder, f"a-12-{seed}", overrides, **{"val/acc": 1.0, "test/acc": 0.5})
    assert frontiers([folder], LADDER)[0].largest_solved == 12  # validation solved it
    assert frontiers([folder], Ladder(KEY, metric=AS_RAN))[0].largest_solved is None

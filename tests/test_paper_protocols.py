"""The paper presets run the protocol their source tables state (docs/protocols.md section 2):
every row with a config key is checked against the composed preset, every row names a
source, and every ``*_paper`` preset has a table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import CONF
from tests.test_configs import compose_train

PROTOCOLS_DOC = Path(__file__).resolve().parents[1] / "docs" / "protocols.md"
SOURCE = re.compile(r"\[(paper|ours|secondary|unverified)[^\]]*\]")
SWEEP = "hydra.sweeper.params."


def source_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """{preset: rows}, each row {knob, key, value, source}, from the ``#### `experiment=X```
    sections."""
    tables: dict[str, list[dict[str, str]]] = {}
    preset = None
    for line in text.splitlines():
        heading = re.match(r"#### `experiment=(\w+)`", line)
        if heading:
            preset = heading.group(1)
            tables[preset] = []
            continue
        if line.startswith("#"):
            preset = None
        if preset is None or not line.startswith("| ") or line.startswith("| knob"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if set(cells[0]) <= {"-"}:
            continue
        knob, key, value, source = cells
        tables[preset].append(
            {"knob": knob, "key": key.strip("`"), "value": value.strip("`"), "source": source}
        )
    return tables


TABLES = source_tables(PROTOCOLS_DOC.read_text())
ROWS = [(preset, row) for preset, rows in TABLES.items() for row in rows if row["key"]]


def configured(cfg, key: str):
    if key.startswith(SWEEP):  # sweep keys contain dots themselves: "model.net.num_layers"
        return cfg.hydra.sweeper.params[key[len(SWEEP) :]]
    return OmegaConf.select(cfg, key, throw_on_missing=True)


def test_every_paper_preset_has_a_source_table():
    presets = {p.stem for p in (CONF / "experiment").glob("*_paper.yaml")}
    assert presets == set(TABLES), presets ^ set(TABLES)
    for preset, rows in TABLES.items():
        assert len([row for row in rows if row["key"]]) >= 5, preset


@pytest.mark.parametrize(
    ("preset", "row"), ROWS, ids=[f"{preset}:{row['key']}" for preset, row in ROWS]
)
def test_each_knob_of_a_paper_preset_is_what_its_table_says(preset, row, tmp_path):
    assert SOURCE.search(row["source"]), f"{preset}: {row['knob']} names no source"
    cfg = compose_train([f"experiment={preset}"], tmp_path)
    value = configured(cfg, row["key"])
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    assert value == yaml.safe_load(row["value"]), (preset, row["key"], value)


def test_the_parser_reads_a_table_and_stops_at_the_next_heading():
    text = "\n".join(
        [
            "#### `experiment=x_paper`",
            "",
            "| knob | config key | value | source |",
            "|---|---|---|---|",
            "| a | `task.a` | `1` | [paper] |",
            "| gap | | none | [ours] |",
            "## next",
            "| b | `task.b` | `2` | [ours] |",
        ]
    )
    assert source_tables(text) == {
        "x_paper": [
            {"knob": "a", "key": "task.a", "value": "1", "source": "[paper]"},
            {"knob": "gap", "key": "", "value": "none", "source": "[ours]"},
        ]
    }


NO_LOCATOR = re.compile(
    r"Torch reconstruction|Torch addition script|student (replication )?report", re.I
)


def test_a_source_without_a_locator_is_tagged_unverified():
    """Accounts named without a locator (a Torch reconstruction, a student report) make a knob
    [unverified], in the tables and in the presets' own comments; and no row credits the paper
    with what no source holds. The two such accounts used earlier now have locators (a
    student project's addition and MNIST scripts: `test_every_secondary_script_has_its_address`)."""
    for preset, rows in TABLES.items():
        for row in rows:
            if NO_LOCATOR.search(row["source"]):
                assert "unverified" in row["source"], (preset, row)
            assert "deep feed-forward nets fail" not in row["source"], (preset, row)
    for path in [*(CONF / "experiment").glob("*_paper.yaml"), CONF / "model" / "grid3d_paper.yaml"]:
        for line in path.read_text().splitlines():
            if NO_LOCATOR.search(line):
                assert "unverified" in line or "no locator" in line, (path.name, line)


def test_every_secondary_script_has_its_address():
    """A knob tagged [secondary: the MNIST script] rests on a file the protocols page links at
    a fixed commit; the MNIST preset's knobs that the script fixes carry that tag."""
    text = PROTOCOLS_DOC.read_text()
    assert re.search(
        r"\(https://github\.com/davidbuniat/GridLSTM/blob/[0-9a-f]{40}/src/train_mnist_rnn\.lua\)",
        text,
    )
    tagged = {row["knob"] for row in TABLES["mnist_paper"] if "the MNIST script" in row["source"]}
    assert {"units per block", "2x2 patches", "layers", "ReLU layer before the softmax"} <= tagged
    assert not [r for r in TABLES["mnist_paper"] if "student replication report" in r["source"]]


def step_speeds(preset: str) -> dict[tuple[str, int], float]:
    """Seconds per 100k samples by (model, depth), from the step-speed file a preset names."""
    named = re.search(r"\((docs/gpu_check/\S+\.json):", preset).group(1)
    rows = json.loads((Path(__file__).resolve().parents[1] / named).read_text())["rows"]
    return {(r["model"], r["depth"]): r["seconds_per_100k"] for r in rows}


def test_the_addition_presets_stated_cost_is_its_measured_step_times_times_its_budget():
    """GPU-hours in conf/experiment/addition_paper.yaml: the step-speed file it names, at the
    preset's budget (a job stops once solved: these are upper bounds)."""
    preset = (CONF / "experiment" / "addition_paper.yaml").read_text()
    speeds = step_speeds(preset)
    cfg = compose_train(["experiment=addition_paper"], Path("."))
    samples = cfg.trainer.max_steps * cfg.task.datamodule.batch_size
    params = cfg.hydra.sweeper.params
    models = str(params["model"]).split(",")
    depths = [int(d) for d in str(params["model.net.num_layers"]).split(",")]
    hours = lambda s: s * samples / 1e5 / 3600  # noqa: E731
    alone = hours(speeds[("grid2d", cfg.model.net.num_layers)])
    table = sum(hours(speeds[(m, d)]) for m in models for d in depths)
    assert f"at most {alone:.1f} GPU-hours for the" in preset
    assert f"at most {table:.1f}\n# for the table ({len(models) * len(depths)} jobs" in preset
    page = PROTOCOLS_DOC.read_text()  # the preset's page says the same
    assert f"at most {alone:.1f} GPU-hours" in page and f"at most {table:.1f} for the table" in page


def test_the_memorization_and_parity_presets_stated_costs_are_their_step_times(tmp_path):
    """Like addition's: the alone job at its depth and the whole table (parity: every bits
    value timed at the longest, an upper bound)."""
    hours = lambda s, samples: s * samples / 1e5 / 3600  # noqa: E731
    for name, alone, per in (
        ("memorization_paper", ("grid2d", 18), 1),
        ("parity_paper", ("grid1d", 50), 5),
    ):
        preset = (CONF / "experiment" / f"{name}.yaml").read_text()
        speeds = step_speeds(preset)
        cfg = compose_train([f"experiment={name}"], Path("."))
        samples = cfg.trainer.max_steps * cfg.task.datamodule.batch_size
        params = cfg.hydra.sweeper.params
        grid = [
            (m, int(d))
            for m in str(params["model"]).split(",")
            for d in str(params["model.net.num_layers"]).split(",")
        ]
        assert set(speeds) == set(grid), name
        table = per * sum(hours(speeds[c], samples) for c in grid)
        assert f"at most {hours(speeds[alone], samples):.1f} GPU-hours" in preset, name
        assert f"at most {table:.1f} for the table" in preset, name


def test_the_mnist_presets_stated_cost_is_its_measured_step_times_times_its_budget():
    """GPU-hours in conf/experiment/mnist_paper.yaml: the step-speed file it names (the
    preset's four models at depth 4), at the preset's budget."""
    preset = (CONF / "experiment" / "mnist_paper.yaml").read_text()
    speeds = {model: s for (model, depth), s in step_speeds(preset).items() if depth == 4}
    cfg = compose_train(["experiment=mnist_paper"], Path("."))
    samples = cfg.trainer.max_steps * cfg.task.datamodule.batch_size
    models = str(cfg.hydra.sweeper.params["model"]).split(",")
    hours = lambda s: s * samples / 1e5 / 3600  # noqa: E731
    assert cfg.model.net.num_layers == 4 and set(speeds) == set(models)
    assert f"at most {hours(speeds[cfg.model.name]):.1f} GPU-hours for the 3-LSTM" in preset
    table = sum(map(hours, speeds.values()))
    assert f"{samples:,}\n# samples) and at most {table:.1f} for the table" in preset

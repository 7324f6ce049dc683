"""Learning curves against samples and multiply-adds (`gridlstm.analysis.curve_figure`): the
sweep table's curves.png and a study table's declared figure, drawn from records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from matplotlib import image

from gridlstm import tables as command
from gridlstm.analysis import curve_figure, declaration, pages
from gridlstm.run.errors import ConfigError
from tests.test_tables import make_job

ROOT = Path(__file__).resolve().parents[1]
STUDY = "addition_depth"
PANEL_PIXELS = 780  # one panel's width: 6.5 inches at 120 dpi


def test_a_seed_that_stopped_early_keeps_its_last_value_in_the_cells_mean():
    """A job stops early only once solved: the cell's curve goes on to its longest seed's end
    with the solved seed at its last value, not ending (or jumping) where it stopped."""
    solved = [(1.0, 0.2), (2.0, 1.0)]
    still = [(1.0, 0.0), (2.0, 0.2), (3.0, 0.4)]
    xs, mean = curve_figure.mean_curve([solved, still])
    assert xs == [1.0, 2.0, 3.0]
    assert mean.tolist() == pytest.approx([0.1, 0.6, 0.7])
    late = [(2.0, 0.5)]  # starts later: x = 1 is left out (not every seed has begun)
    assert curve_figure.mean_curve([solved, late])[0] == [2.0]


def test_a_cells_seeds_are_drawn_each_beside_its_mean_on_both_panels(tmp_path, monkeypatch):
    """Seeds that leave a plateau at different times spread bimodally: each is drawn (thin),
    not summarised by a band that a bounded metric's mean +- std would push past 1."""
    import matplotlib.axes

    drawn: list[list[float]] = []
    original = matplotlib.axes.Axes.plot

    def plot(self, x, y, *args, **kwargs):
        drawn.append(list(y))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    seeds = [[(1.0, 0.0), (2.0, 1.0)], [(1.0, 0.0), (2.0, 0.0)]]
    series = [curve_figure.Series("arm", seeds, 10.0)]
    assert curve_figure.draw(series, tmp_path / "f.png", "val/acc", "t", banded=True) == (1, 2)
    assert drawn == [[0.0, 0.5], [0.0, 1.0], [0.0, 0.0]] * 2  # mean, then each seed; 2 panels


@pytest.mark.parametrize(("macs", "panels"), [((10.0, 40.0), 2), ((10.0, None), 1)])
def test_the_multiply_adds_panel_is_drawn_only_where_every_curve_records_it(tmp_path, macs, panels):
    curve = [(1.0, 0.1), (2.0, 0.5)]
    series = [curve_figure.Series(f"arm {i}", [curve], m) for i, m in enumerate(macs)]
    out = tmp_path / "f.png"
    assert curve_figure.draw(series, out, "val/acc", "t", banded=True) == (2, panels)
    assert image.imread(out).shape[1] == PANEL_PIXELS * panels  # side by side


def test_a_sweep_table_draws_both_panels_when_its_jobs_record_multiply_adds(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for name, layers in (("0", 2), ("1", 4)):
        make_job(sweep, name, "grid2d", layers, 0.5)
        record = json.loads((sweep / name / "metrics.json").read_text())
        (sweep / name / "metrics.json").write_text(json.dumps(record | {"macs_per_sample": 99}))
    command.main([f"sweep={sweep}"])
    assert "(2 curves) against samples and multiply-adds" in capsys.readouterr().out


def study_with_figure(tmp_path: Path, figure: object) -> Path:
    """A copy of a committed study whose seeds table declares ``figure``, each job with a
    curve.csv as the queue keeps it."""
    folder = tmp_path / "docs" / "claims" / STUDY
    shutil.copytree(ROOT / "docs" / "claims" / STUDY, folder)
    for job in (folder / "cpu" / "jobs").iterdir():
        (job / "curve.csv").write_text("samples,value\n1000,0.1\n2000,0.4\n")
        record = json.loads((job / "metrics.json").read_text())
        (job / "metrics.json").write_text(json.dumps(record | {"macs_per_sample": 1000}))
    raw = yaml.safe_load((folder / "study.yaml").read_text())
    raw["tables"]["seeds"]["figure"] = figure
    (folder / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp_path


def test_a_declared_figure_is_drawn_by_the_publishing_command_and_checked(tmp_path):
    figure = {"file": "cpu/curves_compute.png", "label": "validation exact-match"}
    root = study_with_figure(tmp_path, figure)
    out = root / "docs" / "claims" / STUDY / "cpu" / "curves_compute.png"
    missing = [p for p in pages.check(root) if "figure is missing" in p]
    assert missing == [
        f"{out}: tables.seeds's figure is missing (python -m gridlstm.tables study={STUDY} "
        "draws it)"
    ]
    assert out in pages.write(root, STUDY)
    assert image.imread(out).shape[1] == 2 * PANEL_PIXELS  # every job records multiply-adds
    assert pages.write(root, STUDY) == []  # the same curves: not redrawn
    assert not [p for p in pages.check(root) if "figure is missing" in p]
    # the file says what it shows (not the bytes: another matplotlib draws other bytes)
    shown = curve_figure.drawn_fingerprint(out)
    assert shown and "Software" not in image_text(out)
    job = next((root / "docs" / "claims" / STUDY / "cpu" / "jobs").iterdir())
    (job / "curve.csv").write_text("samples,value\n1000,0.1\n2000,0.9\n")
    assert pages.write(root, STUDY) == [out]  # a record changed: redrawn
    assert curve_figure.drawn_fingerprint(out) != shown


def test_a_cap_is_marked_on_both_panels_and_changes_what_the_figure_shows(tmp_path, monkeypatch):
    """The cap is a dashed line at the budget in samples, and on the multiply-adds panel at
    each series' own budget (samples x its multiply-adds a sample); a figure without one
    keeps the fingerprint it had before caps existed."""
    import matplotlib.axes

    marked: list[float] = []
    original = matplotlib.axes.Axes.axvline

    def axvline(self, x=0, *args, **kwargs):
        marked.append(x)
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", axvline)
    curve = [(1.0, 0.1), (2.0, 0.5)]
    series = [curve_figure.Series("a", [curve], 10.0), curve_figure.Series("b", [curve], 40.0)]
    curve_figure.draw(series, tmp_path / "f.png", "val/acc", "t", banded=True, cap=3.0)
    assert sorted(marked) == [3.0, 3.0, 30.0, 120.0]
    plain = curve_figure.fingerprint(series, "val/acc", "t")
    assert plain == curve_figure.fingerprint(series, "val/acc", "t", None)
    assert plain != curve_figure.fingerprint(series, "val/acc", "t", 3.0)
    root = study_with_figure(tmp_path / "repo", {"file": "c.png", "label": "x", "cap": 3000})
    spec = declaration.load(root / "docs" / "claims" / STUDY / "study.yaml").tables["seeds"]
    assert spec.figure and (spec.figure.file, spec.figure.label, spec.figure.cap) == (
        "c.png",
        "x",
        3000,
    )


def image_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as png:
        return dict(png.text)


@pytest.mark.parametrize(
    "figure, message",
    [
        ("curves.png", "figure: a mapping, not 'curves.png'"),  # no label
        ({"file": "../elsewhere.png", "label": "x"}, "figure: file: <name>.png inside the"),
        ({"file": "curves.svg", "label": "x"}, "figure: file: <name>.png inside the"),
        ({"file": "curves.png", "label": "x", "dpi": 300}, "unknown key 'dpi'; valid: cap"),
        ({"file": "curves.png", "label": "x", "cap": 0}, "figure.cap: more than 0, not 0"),
        ({"file": "curves.png", "label": "x", "cap": "3M"}, "figure.cap: a number, not '3M'"),
        ({"file": "curves.png", "label": "x", "cap": True}, "figure.cap: a number, not True"),
    ],
)
def test_a_bad_figure_is_refused_in_one_line_naming_the_form(tmp_path, figure, message):
    root = study_with_figure(tmp_path, figure)
    with pytest.raises(ConfigError, match=r"tables\.seeds\.figure") as err:
        declaration.load(root / "docs" / "claims" / STUDY / "study.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_publishing_command_logs_each_table_and_the_answer_to_wandb_offline(
    tmp_path, monkeypatch, capsys
):
    """The real W&B client, offline: one run per study, each declared table as a wandb.Table
    with the page's rows, the declared figure as an image."""
    from gridlstm.analysis import evidence, record_tables, wandb_log

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    figure = {"file": "cpu/curves_compute.png", "label": "validation exact-match"}
    root = study_with_figure(tmp_path / "repo", figure)
    logs = tmp_path / "logs"
    command.main([f"study={STUDY}", f"root={root}", "wandb=evidence-test", f"wandb_dir={logs}"])
    assert f"logged {STUDY} to W&B (offline)" in capsys.readouterr().out
    (run,) = (logs / "wandb").glob("offline-run-*")
    (logged,) = (run / "files" / "media" / "table" / "tables").glob("seeds_*.table.json")
    study = declaration.load(root / "docs" / "claims" / STUDY / "study.yaml")
    lines = record_tables.render(study.folder, study.tables["seeds"])
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    columns, rows = cells[0], cells[2:]  # the page's header and rows, the rule left out
    assert json.loads(logged.read_text()) == {"columns": columns, "data": rows}
    assert list((run / "files" / "media" / "images" / "figures").glob("seeds_*.png"))
    summary = wandb_log.answer_summary(study)
    assert summary["verdict"] == evidence.outcome(study).word and 0 <= summary["p"] <= 1


def test_wandb_without_a_study_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit, match="2"):
        command.main(["check=true", "wandb=p"])
    err = capsys.readouterr().err.strip()
    assert "wandb=p logs the evidence pages' tables: give it with study=" in err
    assert "\n" not in err

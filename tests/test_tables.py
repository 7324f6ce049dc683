"""The table command on fixture sweeps in the real on-disk layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gridlstm import tables as command
from gridlstm.analysis import job_records


def make_job(sweep: Path, name: str, model: str, layers: int, acc: float | None, metrics_text=None):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(
        f"model:\n  name: {model}\n  net:\n    num_layers: {layers}\n"
        "    hidden_size: ${oc.select:model.net.width,32}\n"
        f"    tied: true\ntask:\n  name: addition\n  size_option: digits\n"
        "  paper: a tied 2-LSTM solves 15-digit addition\n  datamodule:\n    digits: 3\n"
    )
    if metrics_text is not None:
        (job / "metrics.json").write_text(metrics_text)
    elif acc is not None:
        metrics = {
            "test/acc": acc,
            "val/acc": acc + 0.01,
            "params": 1000 * layers,
            "samples_seen": 6400,
            "val/samples_to_threshold": None,
        }
        (job / "metrics.json").write_text(json.dumps(metrics))
        (job / "csv").mkdir()
        rows = [
            {"step": "9", "train/samples_seen": "640", "val/acc": ""},
            {"step": "9", "train/samples_seen": "", "val/acc": "0.2"},
            {"step": "99", "train/samples_seen": "6400", "val/acc": ""},
            {"step": "99", "train/samples_seen": "", "val/acc": str(acc)},
        ]
        with (job / "csv" / "metrics.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "train/samples_seen", "val/acc"])
            writer.writeheader()
            writer.writerows(rows)


def test_table_markdown_csv_and_plot(tmp_path, capsys):
    sweep = tmp_path / "multirun" / "2026-11-21" / "10-00-00_abc123"
    make_job(sweep, "0", "grid2d", 2, 0.5)
    make_job(sweep, "1", "stacked_lstm", 4, 0.25)
    make_job(sweep, "2", "grid2d", 4, None, metrics_text="{not json")
    make_job(sweep, "3", "grid2d", 8, None)  # never finished: no metrics.json
    command.main([f"sweep={sweep}"])
    out, err = capsys.readouterr()
    assert f"{sweep / '2' / 'metrics.json'}: malformed JSON" in err
    assert f"{sweep / '3' / 'metrics.json'}: missing" in err
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["job"], r["model"], r["layers"], r["test/acc"]) for r in rows] == [
        ("0", "grid2d", "2", "0.5"),
        ("1", "stacked_lstm", "4", "0.25"),
    ]
    assert rows[0]["params"] == "2000" and rows[0]["size"] == "3"
    md = (sweep / "table.md").read_text()
    # hidden resolved through OmegaConf's pure selection (a safe resolver)
    assert "| 0 | grid2d | 2 | 32 | True | 2000 | addition | 3 | 0.5000 |" in md
    assert rows[1]["hidden"] == "32"  # stacked LSTM at its base width
    assert "Paper: a tied 2-LSTM solves 15-digit addition" in md
    assert (sweep / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "(2 curves)" in out


def test_no_usable_job_is_one_clear_error(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", "grid2d", 2, None, metrics_text="[]")
    with pytest.raises(SystemExit, match="2"):
        command.main([f"sweep={sweep}"])
    err = capsys.readouterr().err
    assert "no job has a usable metrics.json" in err and "expected a JSON object" in err
    with pytest.raises(SystemExit, match="2"):
        command.main([f"sweep={tmp_path / 'nowhere'}"])
    assert "not a directory" in capsys.readouterr().err


def test_language_model_sweep_gets_bits_per_char_columns_and_curves(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job, (model, bpc) in enumerate([("grid2d", 1.9), ("stacked_lstm", 2.1)]):
        path = sweep / str(job)
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text(
            f"model:\n  name: {model}\n  net:\n    num_layers: 3\n    hidden_size: 64\n"
            "task:\n  name: enwik8\n  monitor: val/bpc\n  size_option: bptt\n"
            "  paper: a tied 2-LSTM reaches 1.47 bits/char\n  datamodule:\n    bptt: 100\n"
        )
        metrics = {"test/bpc": bpc, "val/bpc": bpc + 0.1, "train/chars_per_s": 5e4}
        (path / "metrics.json").write_text(json.dumps({**metrics, "params": 10, "samples_seen": 8}))
        (path / "csv").mkdir()
        (path / "csv" / "metrics.csv").write_text(
            f"step,train/samples_seen,val/bpc\n9,4,\n9,,3.0\n19,8,\n19,,{bpc}\n"
        )
    command.main([f"sweep={sweep}"])
    md = (sweep / "table.md").read_text()
    assert md.splitlines()[0] == (
        "| job | model | layers | hidden | tied | params | task | size | test/bpc | val/bpc | "
        "train/chars_per_s | samples_seen | val/samples_to_threshold |"
    )
    assert "| 0 | grid2d | 3 | 64 |  | 10 | enwik8 | 100 | 1.9000 | 2.0000 |" in md
    assert "1.47 bits/char" in md
    assert "(2 curves)" in capsys.readouterr().out


def test_samples_at_validation_steps_come_from_the_logged_training_steps():
    # Batch 32: samples = 32 * (step + 1); validation ran at steps no training row logged.
    to_samples = job_records.samples_from_step([(24.0, 800.0), (49.0, 1600.0), (74.0, 2400.0)])
    assert to_samples(130.0) == pytest.approx(32 * 131)
    assert to_samples(60.0) == pytest.approx(32 * 61)
    assert job_records.samples_from_step([(9.0, 640.0)])(99.0) == pytest.approx(6400)
    assert job_records.samples_from_step([]) is None


def test_samples_at_validation_steps_are_exact_across_a_resume():
    # Batch 15: samples = 15 * (step + 1) until a resume, after which the log names each
    # step one later for the same samples (15 * step); one line through all pairs is off.
    before = [(s, 15.0 * (s + 1)) for s in (24.0, 49.0, 74.0)]
    after = [(s, 15.0 * s) for s in (100.0, 125.0, 150.0)]
    to_samples = job_records.samples_from_step(before + after)
    assert to_samples(60.0) == 15 * 61
    assert to_samples(140.0) == 15 * 140
    assert to_samples(110.0) == 15 * 110  # after the resume's first pair
    assert to_samples(160.0) == 15 * 160  # past the last pair: its segment's line
    assert to_samples(90.0) == 15 * 91  # between the sides of the resume: before it
    assert to_samples(10.0) == 15 * 11  # before the first
    assert job_records.samples_from_step([(24.0, 375.0), (24.0, 380.0), (49.0, 755.0)])(
        30.0
    ) == pytest.approx(380 + 15 * 6)  # a step logged twice: its last value


def test_stopped_jobs_show_their_status_and_reason(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", "grid2d", 2, 0.5)
    reason = "training diverged at step 7: train/loss is nan"
    diverged = {"status": "diverged", "reason": reason, "samples_seen": 64, "global_step": 8}
    make_job(sweep, "1", "grid2d", 4, None, metrics_text=json.dumps(diverged))
    command.main([f"sweep={sweep}"])
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["job"], r["status"], r["reason"]) for r in rows] == [
        ("0", "completed", ""),
        ("1", "diverged", reason),
    ]
    make_job(tmp_path / "clean", "0", "grid2d", 2, 0.5)
    command.main([f"sweep={tmp_path / 'clean'}"])
    assert "status" not in (tmp_path / "clean" / "table.md").read_text()


def test_a_job_config_cannot_copy_the_environment_into_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDLSTM_TEST_SECRET", "hunter2-token")
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", "grid2d", 2, 0.5)
    config = sweep / "0" / ".hydra" / "config.yaml"
    text = config.read_text().replace("name: grid2d", "name: ${oc.env:GRIDLSTM_TEST_SECRET}")
    text = text.replace("digits: 3", "digits: ${oc.decode:'3'}")
    config.write_text(text)
    command.main([f"sweep={sweep}"])
    for name in ("table.md", "table.csv"):
        written = (sweep / name).read_text()
        assert "hunter2-token" not in written
        assert "${oc.env:GRIDLSTM_TEST_SECRET}" in written  # shown as the text it is
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert rows[0]["hidden"] == "32"  # a pure selection still resolves


def test_a_retired_resolver_in_a_saved_config_is_shown_as_its_text(tmp_path):
    """``gridlstm_comparable_hidden`` (retired in 0.3) is no longer registered or run."""
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", "grid2d", 2, 0.5)
    config = sweep / "0" / ".hydra" / "config.yaml"
    old = "${gridlstm_comparable_hidden:grid2d,2,true,32}"
    config.write_text(config.read_text().replace("${oc.select:model.net.width,32}", old))
    command.main([f"sweep={sweep}"])
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert rows[0]["hidden"] == old


def test_jobs_that_differ_only_in_seed_are_summarised_with_mean_std_and_n(tmp_path, capsys):
    """2 depths x 3 seeds, one of which diverged: mean +- sample std over completed runs."""
    import statistics

    sweep = tmp_path / "sweep"
    accs = {(2, 1): 0.5, (2, 2): 0.7, (2, 3): 0.9, (4, 1): 0.2, (4, 2): 0.4, (4, 3): None}
    for number, ((layers, seed), acc) in enumerate(accs.items()):
        job = str(number)
        if acc is None:
            diverged = {"status": "diverged", "reason": "nan at step 3"}
            make_job(sweep, job, "grid2d", layers, None, metrics_text=json.dumps(diverged))
        else:
            make_job(sweep, job, "grid2d", layers, acc)
            record = json.loads((sweep / job / "metrics.json").read_text())
            record["val/samples_to_threshold"] = 1000 * seed if acc >= 0.7 else None
            (sweep / job / "metrics.json").write_text(json.dumps(record))
        (sweep / job / ".hydra" / "overrides.yaml").write_text(
            f"- model.net.num_layers={layers}\n- seed={seed}\n- logger=csv\n"
        )
    command.main([f"sweep={sweep}"])
    out = capsys.readouterr().out
    cells = list(csv.DictReader((sweep / "table_seeds.csv").open()))
    assert [(c["model.net.num_layers"], c["n"], c["jobs"]) for c in cells] == [
        ("2", "3", "3"),
        ("4", "2", "3"),
    ]
    assert float(cells[0]["test/acc mean"]) == pytest.approx(0.7)
    assert float(cells[0]["test/acc std"]) == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert float(cells[1]["test/acc mean"]) == pytest.approx(0.3)
    assert float(cells[0]["val/samples_to_threshold median"]) == 2500  # seeds 2, 3 reached
    assert cells[0]["val/samples_to_threshold reached"] == "2"
    md = (sweep / "table.md").read_text()
    assert "| 2 | 3/3 | 0.7000 +- 0.2000 |" in md
    assert "| 4 | 2/3 | 0.3000 +- 0.1414 |" in md
    assert "2500 (2/3)" in md
    assert "not averaged: job 5: diverged (nan at step 3)" in md
    # the per-job table gets a column per swept override
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["model.net.num_layers"], r["seed"]) for r in rows][:2] == [("2", "1"), ("2", "2")]
    assert "logger" not in rows[0]  # the same for every job: not a column
    assert "(2 curves)" in out  # one mean curve with a band per depth
    # the verdict rule over the main metric (val/acc): depth 2 (0.71 +- 0.2) against depth 4
    # (the two completed runs), the diverged run left out
    verdict = (sweep / "verdicts.md").read_text()
    assert "Best cell by mean val/acc (max): **model.net.num_layers=2**" in verdict
    assert "| model.net.num_layers=4 |" in verdict and "| 2 |" in verdict


def test_a_cell_whose_runs_were_all_interrupted_is_shown_with_n_zero(tmp_path):
    """A preempted cell (every seed stopped by SIGTERM) must not break the summary."""
    sweep = tmp_path / "sweep"
    for number, (layers, seed) in enumerate([(2, 1), (2, 2), (8, 1), (8, 2)]):
        job = str(number)
        if layers == 8:
            stopped = {"status": "interrupted", "reason": "interrupted by SIGTERM at step 5"}
            make_job(sweep, job, "grid2d", layers, None, metrics_text=json.dumps(stopped))
        else:
            make_job(sweep, job, "grid2d", layers, 0.8)
            record = json.loads((sweep / job / "metrics.json").read_text())
            record["val/samples_to_threshold"] = 640
            (sweep / job / "metrics.json").write_text(json.dumps(record))
        (sweep / job / ".hydra" / "overrides.yaml").write_text(
            f"- model.net.num_layers={layers}\n- seed={seed}\n"
        )
    command.main([f"sweep={sweep}"])
    md = (sweep / "table.md").read_text()
    assert "| 2 | 2/2 | 0.8000 +- 0.0000 |" in md and "640 (2/2)" in md
    assert "| 8 | 0/2 | - |" in md and "- (0/0)" in md
    assert "job 2: interrupted (interrupted by SIGTERM at step 5)" in md


def test_a_seed_only_sweep_counts_runs_as_integers(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (1, 2, 3):
        job = str(seed - 1)
        make_job(sweep, job, "grid2d", 2, 0.9)
        record = json.loads((sweep / job / "metrics.json").read_text())
        record["val/samples_to_threshold"] = 640 * seed
        (sweep / job / "metrics.json").write_text(json.dumps(record))
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
    command.main([f"sweep={sweep}"])
    md = (sweep / "table.md").read_text()
    assert "| 3/3 | 0.9000 +- 0.0000 |" in md and "1280 (3/3)" in md


def test_samples_to_extra_thresholds_come_from_the_logs_and_are_summarised_over_seeds(
    tmp_path, capsys
):
    """thresholds=0.5,0.2: samples at the first validation at or above each value (val/acc:
    0.2 at 640 samples, then the job's accuracy at 6400), median over the seeds that did."""
    sweep = tmp_path / "sweep"
    for number, (seed, acc) in enumerate([(1, 0.4), (2, 0.6), (3, 0.9)]):
        make_job(sweep, str(number), "grid2d", 2, acc)
        (sweep / str(number) / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
    command.main([f"sweep={sweep}", "thresholds=0.5,0.2"])
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["val/samples_to_0.5"], r["val/samples_to_0.2"]) for r in rows] == [
        ("", "640"),
        ("6400", "640"),
        ("6400", "640"),
    ]
    cells = list(csv.DictReader((sweep / "table_seeds.csv").open()))
    assert float(cells[0]["val/samples_to_0.5 median"]) == 6400
    assert cells[0]["val/samples_to_0.5 reached"] == "2"
    assert "| 6400 (2/3) | 640 (3/3) |" in (sweep / "table.md").read_text()


def test_thresholds_that_are_not_numbers_are_one_line(tmp_path, capsys):
    make_job(tmp_path / "sweep", "0", "grid2d", 2, 0.5)
    with pytest.raises(SystemExit) as stop:
        command.main([f"sweep={tmp_path / 'sweep'}", "thresholds=0.9,high"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: thresholds=0.9,high: numbers separated by commas, e.g. 0.9,0.99"
    )


def test_a_swept_model_is_one_column(tmp_path, capsys):
    """`model=` swept is the base `model` column, shown once (the table printed it twice)."""
    sweep = tmp_path / "sweep"
    for name, model, layers in (("0", "grid2d", 2), ("1", "stacked_lstm", 4)):
        make_job(sweep, name, model, layers, 0.5)
        overrides = [f"model={model}", f"model.net.num_layers={layers}"]
        (sweep / name / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    command.main([f"sweep={sweep}"])
    header = (sweep / "table.csv").read_text().splitlines()[0].split(",")
    assert header.count("model") == 1 and "model.net.num_layers" in header
    assert capsys.readouterr().out.splitlines()[0].count("| model |") <= 1

"""The study queue (gridlstm.queue, gridlstm.analysis.studies): jobs, deadline, resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridlstm import queue
from gridlstm.analysis.studies import runner as study_queue
from gridlstm.analysis.studies.executors import train_argv
from gridlstm.run.clock import moment, stamp
from gridlstm.run.errors import ConfigError
from tests.conftest import ROOT, offline_env, write_mnist, write_pairs

TINY_ADDITION = [
    "task=addition",
    "model=stacked_lstm",
    "logger=csv",
    "model.net.hidden_size=8",
    "model.net.num_layers=1",
    "task.datamodule.digits=2",
    "task.datamodule.batch_size=8",
    "task.datamodule.batches_per_epoch=2",
    "task.datamodule.val_size=16",
    "task.datamodule.test_size=16",
]


def write_studies(path: Path, studies: dict) -> Path:
    path.write_text(json.dumps(studies))  # JSON is YAML
    return path


def run_queue(tmp_path: Path, studies: dict, *extra: str) -> int:
    """The queue's exit code (0: it returned); results under ``gpu/`` unless ``tag=`` is given
    (tag=auto is `test_the_results_folder_names_the_machine_the_jobs_ran_on`'s)."""
    tag = [] if any(e.startswith("tag=") for e in extra) else ["tag=gpu"]
    try:
        queue.main(
            [
                f"studies={write_studies(tmp_path / 'studies.yaml', studies)}",
                f"runs={tmp_path / 'runs'}",
                f"results={tmp_path / 'results'}",
                *tag,
                *extra,
            ]
        )
    except SystemExit as stop:
        if stop.code != 1:  # a refusal (exit 2) is the caller's to see
            raise
        return 1
    return 0


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key, value in offline_env().items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"overrides": []}, "missing claim:"),
        ({"claim": "c", "grid": {"seed": []}}, "grid.seed: empty; at least 1 needed"),
        ({"claim": "c", "runs": 3}, "unknown key 'runs'; valid: cases, claim, dry_run"),
    ],
)
def test_a_bad_studies_file_is_one_line_naming_the_study(tmp_path, study, message):
    path = write_studies(tmp_path / "s.yaml", {"mine": study})
    with pytest.raises(ConfigError, match="study 'mine'.*" + message.replace("[", r"\[")):
        study_queue.load_studies(path)


def test_a_results_tag_that_is_not_a_folder_name_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_queue(tmp_path, {"a": {"claim": "x"}}, "tag=../up")
    assert stop.value.code == 2
    assert "tag='../up': a folder name" in capsys.readouterr().err


def test_an_empty_key_in_a_studies_file_reads_as_none_given(tmp_path):
    given = {"claim": "c", "overrides": None, "grid": None, "dry_run": None}
    study = study_queue.load_studies(write_studies(tmp_path / "s.yaml", {"mine": given}))["mine"]
    assert [j.overrides for j in study_queue.expand("mine", study, tmp_path, False)] == [[]]


def test_two_studies_may_not_share_a_results_folder(tmp_path):
    path = write_studies(tmp_path / "s.yaml", {"a": {"claim": "x"}, "b": {"claim": "x"}})
    with pytest.raises(ConfigError, match="'a' and 'b' share claim 'x'"):
        study_queue.load_studies(path)


def test_a_typo_in_a_job_is_refused_before_any_job_starts(tmp_path, capsys):
    studies = {
        "ok": {"claim": "ok", "overrides": TINY_ADDITION},
        "typo": {"claim": "t", "overrides": [*TINY_ADDITION, "trainer.max_stpes=3"]},
    }
    with pytest.raises(SystemExit) as stop:
        run_queue(tmp_path, studies)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: typo/typo: ") and "max_stpes" in err
    assert not (tmp_path / "runs").exists()


def test_jobs_are_the_grid_in_file_order_with_the_dry_run_overrides_and_the_environment(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MY_DATA", "/data/here")
    study = {
        "claim": "c",
        "overrides": ["task.path=$MY_DATA/x.txt"],
        "dry_run": ["trainer.max_steps=2"],
        "grid": {"model": ["grid2d", "stacked_lstm"], "model.net.num_layers": [1, 8]},
    }
    jobs = study_queue.expand("s", study, tmp_path, dry_run=True)
    assert [j.name for j in jobs] == [
        "grid2d-num_layers1",
        "grid2d-num_layers8",
        "stacked_lstm-num_layers1",
        "stacked_lstm-num_layers8",
    ]
    assert jobs[1].overrides == [  # the dry run's last: it wins over the grid
        "task.path=/data/here/x.txt",
        "model=grid2d",
        "model.net.num_layers=8",
        "trainer.max_steps=2",
    ]
    assert jobs[1].run_dir == tmp_path / "s" / "grid2d-num_layers8"
    assert study_queue.expand("s", study, tmp_path, dry_run=False)[0].overrides[1] == "model=grid2d"
    # Every study makes progress: one job of each study in turn.
    a, b = (
        study_queue.expand("a", study, tmp_path, False),
        study_queue.expand("b", {"claim": "d"}, tmp_path, False),
    )
    assert [(j.study, j.name) for j in study_queue.interleave([a, b])][:3] == [
        ("a", "grid2d-num_layers1"),
        ("b", "b"),
        ("a", "grid2d-num_layers8"),
    ]


def test_a_study_without_its_data_is_skipped_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR_HERE", raising=False)
    studies = {
        "mnist": {
            "claim": "m",
            "needs": {"task.datamodule.data_dir": "the MNIST files"},
            "overrides": ["task.datamodule.data_dir=$NO_SUCH_VAR_HERE/mnist"],
        }
    }
    run_queue(tmp_path, studies, "minutes=1")
    out = capsys.readouterr().out
    assert (
        "mnist: skipped: needs the MNIST files (task.datamodule.data_dir=$NO_SUCH_VAR_HERE" in out
    )
    assert not (tmp_path / "results" / "m").exists()


def test_a_completed_job_is_not_run_again_and_every_job_resumes(tmp_path):
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1, 2]}}}
    done = tmp_path / "runs" / "s" / "seed1"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"status": "completed", "test/acc": 0.5}))
    jobs = study_queue.expand("s", studies["s"], tmp_path / "runs", dry_run=False)
    assert "resume=auto" in train_argv(jobs[1], threads=1)
    out = tmp_path / "results" / "s" / "gpu"
    out.mkdir(parents=True)  # an earlier queue run's report: its cost stays on the record
    earlier = [{"job": "seed1", "seconds": 30.0}, {"job": "seed2", "seconds": 4.5}]
    (out / "queue.json").write_text(json.dumps({"jobs": earlier}))
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1  # no time to start seed 2
    report = json.loads((out / "queue.json").read_text())
    assert [(j["job"], j["status"], j["seconds"]) for j in report["jobs"]] == [
        ("seed1", "done earlier", 30.0),
        ("seed2", "not started", 4.5),  # interrupted earlier: resuming adds to it
    ]
    assert not (tmp_path / "runs" / "s" / "seed1.log").exists()  # no process was started


def test_queue_json_keeps_every_queue_runs_start_end_and_wall_time(tmp_path):
    """queue.json is rewritten by each queue run; its runs list is appended to, so the first
    start (what a confirmatory stage's pre-registration is checked against) survives."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1]}}}
    out = tmp_path / "results" / "s" / "gpu"
    out.mkdir(parents=True)  # a report written before runs were kept: its start is the first
    (out / "queue.json").write_text(json.dumps({"started": "2026-01-02 03:04:05", "jobs": []}))
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1  # started nothing
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1
    runs = json.loads((out / "queue.json").read_text())["runs"]
    assert [r["started"] for r in runs][0] == "2026-01-02 03:04:05" and len(runs) == 3
    assert all(r["jobs_started"] == 0 and r["wall_s"] >= 0 and r["ended"] for r in runs[1:])
    for run in runs[1:]:  # this machine's clock with its offset: it orders across time zones
        assert abs(moment(run["ended"]).timestamp() - time.time()) < 600
        assert moment(run["started"]) <= moment(run["ended"])


def test_a_queue_run_stopped_before_it_wrote_queue_json_is_listed_by_the_next(tmp_path):
    """A killed queue (a lost machine) writes no queue.json; its start, noted in the runs
    folder before any job, is listed by the next run that ends, jobs started unknown."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1]}}}
    folder = tmp_path / "runs" / "s"
    folder.mkdir(parents=True)
    killed = "2026-01-01 00:00:00+00:00"
    (folder / "queue_starts.jsonl").write_text(json.dumps({"started": killed}) + "\n")
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1
    runs = json.loads((tmp_path / "results/s/gpu/queue.json").read_text())["runs"]
    assert len(runs) == 3 and runs[0]["started"] == killed and runs[0]["jobs_started"] is None
    assert runs[0]["ended"] is None and "stopped" in runs[0]["note"]
    assert all(r["ended"] and "note" not in r for r in runs[1:])  # each ended run once
    assert len((folder / "queue_starts.jsonl").read_text().splitlines()) == 3  # noted first


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is Unix-only")
@pytest.mark.parametrize(  # POSIX zone strings: no time-zone database needed
    "zone, offset", [("UTC0", "+00:00"), ("WST+5", "-05:00"), ("EST-5:30", "+05:30")]
)
def test_a_record_time_names_its_offset_and_reads_back_as_the_same_instant(
    monkeypatch, zone, offset
):
    """Pre-registration orders runs written on machines in different zones; a time written
    before records kept an offset (all of them on UTC clocks) reads as UTC on every machine."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        written = stamp(1_764_340_000.0)
        assert written.endswith(offset) and moment(written).timestamp() == 1_764_340_000.0
        assert moment("2025-11-28 14:26:40").timestamp() == 1_764_340_000.0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_job_completed_in_an_earlier_queue_run_is_restored_from_the_results_folder(
    tmp_path, capsys
):
    """A fresh checkout has no run directories, only the committed results: a completed job
    there is not run again and stays in the study's table, with its earlier seconds; a copy
    made under other overrides (the study changed) is not taken for the job."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1, 2, 3]}}}
    out = tmp_path / "results" / "s" / "gpu"
    for seed, overrides in (
        (1, TINY_ADDITION),
        (2, [*TINY_ADDITION[:-1], "task.datamodule.test_size=32"]),
    ):
        copy = out / "jobs" / f"seed{seed}"
        copy.mkdir(parents=True)
        record = {"status": "completed", "test/acc": 0.25 * seed, "samples_seen": 16}
        (copy / "metrics.json").write_text(json.dumps(record))
        listed = [*overrides, f"seed={seed}", "resume=auto", "hardware.threads=1"]
        (copy / "overrides.yaml").write_text("".join(f"- {o}\n" for o in listed))
    (out / "queue.json").write_text(json.dumps({"jobs": [{"job": "seed1", "seconds": 12.5}]}))
    (out / "jobs" / "seed1" / "curve.csv").write_text("samples,value\n8,0.125\n16,0.25\n")
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1  # too little time to start a job
    assert "(1 curves)" in capsys.readouterr().out  # the restored job's kept curve
    report = json.loads((out / "queue.json").read_text())
    assert [(j["job"], j["status"], j["seconds"]) for j in report["jobs"]] == [
        ("seed1", "done earlier", 12.5),
        ("seed2", "not started", 0.0),
        ("seed3", "not started", 0.0),
    ]
    assert report["jobs"][0]["note"].startswith("restored from ")
    assert not (tmp_path / "runs" / "s" / "seed1.log").exists()  # no process was started
    table = (out / "table.md").read_text()
    assert "| seed1 |" in table and "0.2500" in table and "seed2" not in table
    # the earlier copy of the changed job is left as it was
    assert json.loads((out / "jobs" / "seed2" / "metrics.json").read_text())["test/acc"] == 0.5


def test_a_study_complete_before_the_run_leaves_its_records_as_they_were(tmp_path, capsys):
    """The documented command re-run on a committed, complete study: every job restored,
    nothing started, and its records (queue.json included) not rewritten: git stays clean."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1]}}}
    out = tmp_path / "results" / "s" / "gpu"
    copy = out / "jobs" / "seed1"
    copy.mkdir(parents=True)
    record = {"status": "completed", "test/acc": 0.5, "samples_seen": 16}
    (copy / "metrics.json").write_text(json.dumps(record))
    listed = [*TINY_ADDITION, "seed=1", "resume=auto", "hardware.threads=1"]
    (copy / "overrides.yaml").write_text("".join(f"- {o}\n" for o in listed))
    (out / "queue.json").write_text(json.dumps({"jobs": [{"job": "seed1", "seconds": 3.0}]}))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert run_queue(tmp_path, studies, "minutes=5") == 0
    assert "s: complete before this run" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_the_results_keep_each_jobs_curve_from_its_log(tmp_path):
    """What a later restore needs to draw the job's curve: (samples, val/acc) per validation."""
    studies = {"s": {"claim": "s", "overrides": TINY_ADDITION, "grid": {"seed": [1]}}}
    (job,) = study_queue.expand("s", studies["s"], tmp_path / "runs", dry_run=False)
    copy = tmp_path / "earlier" / "jobs" / job.name  # a record and overrides, as restored
    copy.mkdir(parents=True)
    (copy / "metrics.json").write_text(json.dumps({"status": "completed", "val/acc": 0.5}))
    (copy / "overrides.yaml").write_text("".join(f"- {o}\n" for o in job.overrides))
    study_queue.restore([job], tmp_path / "earlier")
    (job.run_dir / "csv").mkdir()
    (job.run_dir / "csv" / "metrics.csv").write_text(
        "step,train/samples_seen,val/acc\n0,8,\n1,16,\n1,,0.25\n3,32,\n3,,0.5\n"
    )
    out = tmp_path / "results"
    study_queue.collect("s", [job], tmp_path / "runs", out)
    assert (out / "jobs" / job.name / "curve.csv").read_text().splitlines() == [
        "samples,value",
        "16,0.25",
        "32,0.5",
    ]


def test_cases_run_at_every_grid_value_first_value_first(tmp_path):
    study = {
        "claim": "c",
        "cases": [{"model": "grid1d", "optim.optimizer.lr": 0.003}, {"model": "tanh_net"}],
        "grid": {"task.datamodule.bits": [12, 14]},
    }
    jobs = study_queue.expand("s", study, tmp_path, dry_run=False)
    assert [j.name for j in jobs] == [
        "grid1d-lr0.003-bits12",
        "tanh_net-bits12",
        "grid1d-lr0.003-bits14",
        "tanh_net-bits14",
    ]
    assert jobs[2].overrides == [
        "model=grid1d",
        "optim.optimizer.lr=0.003",
        "task.datamodule.bits=14",
    ]


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"cases": []}, "cases: empty; at least 1 needed"),
        ({"cases": [{}]}, r"cases\[0\]: empty; at least 1 needed"),
        ({"frontier": {"key": "bits"}}, "frontier: missing metric:"),
        (
            {"grid": {"seed": [1]}, "frontier": {"key": "bits", "metric": "val/acc", "below": 0.6}},
            "frontier key 'bits' is not a grid key; grid keys: seed",
        ),
        (
            {"grid": {"bits": [1]}, "frontier": {"key": "bits", "metric": "val/acc", "below": "x"}},
            "frontier.below: a number, not 'x'",
        ),
    ],
)
def test_a_bad_case_or_frontier_is_one_line_naming_the_study(tmp_path, study, message):
    path = write_studies(tmp_path / "s.yaml", {"mine": {"claim": "c", **study}})
    with pytest.raises(ConfigError, match="study 'mine'.*" + message):
        study_queue.load_studies(path)


def test_a_case_at_chance_is_not_run_at_harder_settings_the_others_are(tmp_path):
    studies = {
        "s": {
            "claim": "s",
            "overrides": TINY_ADDITION,
            "cases": [{"seed": 1}, {"seed": 2}],
            "grid": {"task.datamodule.digits": [2, 3, 4]},
            "frontier": {"key": "task.datamodule.digits", "metric": "val/acc", "below": 0.6},
        }
    }
    for job, acc in (("seed1-digits2", 0.5), ("seed2-digits2", 0.9)):
        done = tmp_path / "runs" / "s" / job
        done.mkdir(parents=True)
        (done / "metrics.json").write_text(json.dumps({"status": "completed", "val/acc": acc}))
    assert run_queue(tmp_path, studies, "minutes=0.01") == 1  # too little time for anything
    report = json.loads((tmp_path / "results" / "s" / "gpu" / "queue.json").read_text())
    assert [(j["job"], j["status"]) for j in report["jobs"]] == [
        ("seed1-digits2", "done earlier"),
        ("seed2-digits2", "done earlier"),
        ("seed1-digits3", "past the frontier"),
        ("seed2-digits3", "not started"),  # above the bar at 2 digits: it would run
        ("seed1-digits4", "past the frontier"),
        ("seed2-digits4", "not started"),
    ]
    note = report["jobs"][4]["note"]
    assert note == "val/acc 0.500 < 0.6 at task.datamodule.digits=2"


def test_a_slot_takes_the_first_ready_job_a_frontier_job_waits_for_its_easier_one(
    tmp_path, monkeypatch
):
    import threading

    monkeypatch.setattr(study_queue, "POLL_S", 0.01)
    study = {
        "claim": "s",
        "cases": [{"seed": 1}, {"seed": 2}],
        "grid": {"task.datamodule.digits": [2, 3]},
        "frontier": {"key": "task.datamodule.digits", "metric": "val/acc", "below": 0.6},
    }
    jobs = study_queue.expand("s", study, tmp_path, dry_run=False)
    queue = study_queue.Queue(jobs, 2, time.monotonic() + 60, 1, {"s": study["frontier"]})
    first, second = queue.next_job(), queue.next_job()  # both running now
    assert [first.name, second.name] == ["seed1-digits2", "seed2-digits2"]
    taken = []
    waiting = threading.Thread(target=lambda: taken.append(queue.next_job()))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive()  # neither 3-digit job is ready while its 2-digit one runs
    second.status = "completed"  # seed 2 finishes first: its harder job goes before seed 1's
    waiting.join(timeout=10)
    assert [j.name for j in taken] == ["seed2-digits3"]


def test_an_error_in_a_slot_is_the_queues_not_lost(tmp_path, monkeypatch):
    jobs = study_queue.expand("s", {"claim": "s", "grid": {"seed": [1, 2]}}, tmp_path, False)
    queue = study_queue.Queue(jobs, 2, time.monotonic() + 60, 1)

    def broken(job):
        raise RuntimeError(f"broken {job.name}")

    monkeypatch.setattr(queue, "run_one", broken)
    with pytest.raises(RuntimeError, match="broken seed"):
        queue.run()


@pytest.mark.slow
def test_deadline_stops_a_job_with_sigterm_and_the_next_queue_resumes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(study_queue, "MIN_START_S", 1)
    long_run = {
        "long": {"claim": "long", "overrides": [*TINY_ADDITION, "trainer.max_steps=100000"]},
        "short": {"claim": "short", "overrides": [*TINY_ADDITION, "trainer.max_steps=4"]},
    }
    start = time.monotonic()
    run_queue(tmp_path, long_run, "minutes=0.6", "jobs=2")
    assert time.monotonic() - start < 0.6 * 60 + study_queue.GRACE_S
    first = json.loads((tmp_path / "runs" / "long" / "long" / "metrics.json").read_text())
    assert first["status"] == "interrupted" and first["global_step"] > 0
    assert (tmp_path / "runs" / "long" / "long" / "checkpoints" / "last.ckpt").is_file()
    report = json.loads((tmp_path / "results" / "long" / "gpu" / "queue.json").read_text())
    assert report["jobs"][0]["status"] == "interrupted" and "SIGTERM" in report["jobs"][0]["note"]
    short = tmp_path / "results" / "short" / "gpu"
    assert (
        json.loads((short / "jobs" / "short" / "metrics.json").read_text())["status"] == "completed"
    )
    assert (short / "table.md").is_file()

    run_queue(tmp_path, long_run, "minutes=0.6", "jobs=2")
    second = json.loads((tmp_path / "runs" / "long" / "long" / "metrics.json").read_text())
    assert second["status"] == "interrupted" and second["global_step"] > first["global_step"]
    log = (tmp_path / "runs" / "long" / "long.log").read_text()
    assert "last.ckpt" in log.split("$ ")[-1]  # the second run resumed from the checkpoint
    report = json.loads((short / "queue.json").read_text())
    assert report["jobs"][0]["status"] == "done earlier"  # a completed job is not run again


def test_sigterm_to_the_queue_stops_its_jobs_resumably_and_starts_no_more(tmp_path):
    long = [*TINY_ADDITION, "trainer.max_steps=100000"]
    studies = write_studies(
        tmp_path / "s.yaml",
        {"long": {"claim": "long", "overrides": long, "grid": {"seed": [1, 2]}}},
    )
    out = tmp_path / "results" / "long" / "gpu"
    out.mkdir(parents=True)  # seed 1 ran 100 s in an earlier queue run: this run adds to it
    (out / "queue.json").write_text(json.dumps({"jobs": [{"job": "seed1", "seconds": 100.0}]}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridlstm.queue",
            f"studies={studies}",
            "jobs=1",
            f"runs={tmp_path / 'runs'}",
            f"results={tmp_path / 'results'}",
            "tag=gpu",
        ],
        cwd=ROOT,
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = tmp_path / "runs" / "long" / "seed1" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not first.is_file() and time.monotonic() < deadline:  # training is under way
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    printed, _ = proc.communicate(timeout=study_queue.GRACE_S + 60)
    report = json.loads((out / "queue.json").read_text())
    assert [(j["job"], j["status"]) for j in report["jobs"]] == [
        ("seed1", "interrupted"),
        ("seed2", "not started"),
    ], printed
    assert report["jobs"][1]["note"] == "the queue was stopped"
    assert report["jobs"][0]["seconds"] > 100.0


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_job_its_task_refuses_at_full_size_is_refused_before_any_job_starts(
    tmp_path, capsys, dry_run
):
    """Parity at k = 8 has 256 distinct strings, too few for 500 validation and 500 test
    strings. The dry run's tiny held-out sets hid it (a real queue once started and failed
    such a job): the queue now builds each synthetic task's data at full size first."""
    parity = [
        "task=parity",
        "model=grid1d",
        "logger=csv",
        "task.datamodule.val_size=500",
        "task.datamodule.test_size=500",
    ]
    tiny = ["task.datamodule.val_size=16", "task.datamodule.test_size=16", "trainer.max_steps=2"]
    studies = {
        "fine": {
            "claim": "f",
            "overrides": parity,
            "grid": {"task.datamodule.bits": [12]},
            "dry_run": tiny,
        },
        "small": {
            "claim": "s",
            "overrides": parity,
            "grid": {"task.datamodule.bits": [12, 8]},
            "dry_run": tiny,
        },
    }
    with pytest.raises(SystemExit) as stop:
        run_queue(tmp_path, studies, f"dry_run={str(dry_run).lower()}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: small/bits8: task=parity: val_size + test_size = 1000 is more than half of "
        "the 256 distinct problems with bits=8; lower them or make the task larger"
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_dry_run_of_a_study_without_tiny_overrides_is_refused(tmp_path):
    """Without its dry_run: list a "dry run" would train every job at full size (it once
    did, for a quarter of an hour): refused in one line naming the study."""
    study = {"claim": "c", "overrides": ["model=grid2d"], "cases": [{"seed": 1}]}
    with pytest.raises(ConfigError, match="study 's' has no dry_run: overrides"):
        study_queue.expand("s", study, tmp_path, dry_run=True)
    assert study_queue.expand("s", study, tmp_path, dry_run=False)


def test_every_gpu_study_job_passes_the_train_dry_run(tmp_path, monkeypatch):
    """Each distinct configuration of scripts/gpu_studies.yaml's jobs (the learning rate and
    seed aside) composed and checked as `python train.py ... dry_run=true` checks it (config,
    data, the model built at its dry-run size), in this process: the fast guard for what the
    slow full dry run below trains (a preset key a swept model lacks failed it once)."""
    from gridlstm.run import dry_run

    write_mnist(tmp_path / "data" / "mnist", train=60, test=20)
    monkeypatch.setenv("GRIDLSTM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRIDLSTM_TRANSLATION_FILE", str(write_pairs(tmp_path / "p.txt", count=80)))
    monkeypatch.chdir(tmp_path)
    seen, refused = set(), []
    for name, study in study_queue.load_studies(ROOT / "scripts" / "gpu_studies.yaml").items():
        for job in study_queue.expand(name, study, tmp_path / "runs", True):
            kept = [o for o in job.overrides if not o.startswith(("optim.optimizer.lr=", "seed="))]
            if tuple(kept) in seen:
                continue
            seen.add(tuple(kept))
            overrides = [*job.overrides, f"hydra.run.dir={tmp_path / 'out' / str(len(seen))}"]
            cfg = dry_run.compose_job(ROOT / "conf", overrides)
            plan = dry_run.plan_job(cfg, overrides, dry_run.place(cfg, False, 0, None))
            if plan.outcome != "start":
                refused.append(f"{name}/{job.name}: {plan.outcome} {plan.detail}")
    assert len(seen) > 50 and not refused, refused


@pytest.mark.slow
def test_gpu_studies_dry_run_runs_every_study_on_the_cpu(tmp_path):
    """scripts/gpu_studies.sh --dry-run: every job of every study for a few steps (about nine
    minutes on 2 cores; the test above checks every configuration in about one)."""
    write_mnist(tmp_path / "data" / "mnist", train=60, test=20)
    env = {
        **offline_env(),
        "GRIDLSTM_DATA_DIR": str(tmp_path / "data"),
        "GRIDLSTM_TRANSLATION_FILE": str(write_pairs(tmp_path / "pairs.txt", count=80)),
    }
    done = subprocess.run(
        [
            "bash",
            "scripts/gpu_studies.sh",
            "--dry-run",
            "jobs=2",
            f"runs={tmp_path / 'runs'}",
            f"results={tmp_path / 'results'}",
            "tag=gpu",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    studies = study_queue.load_studies(ROOT / "scripts" / "gpu_studies.yaml")
    for name, study in studies.items():
        out = tmp_path / "results" / study["claim"] / "gpu_dry_run"
        report = json.loads((out / "queue.json").read_text())
        assert report["dry_run"] is True
        jobs = study_queue.expand(name, study, tmp_path, True)
        assert len(report["jobs"]) == len(jobs)
        statuses = {j["job"]: j["status"] for j in report["jobs"]}
        if "frontier" not in study:
            assert set(statuses.values()) == {"completed"}, (name, report["jobs"])
            continue
        # Each case runs at the ladder's first step; tiny runs end near chance, so most stop
        # there by the frontier rule (one that lands above its bar by luck goes on).
        key = study["frontier"]["key"]
        first = min(job.combo[key] for job in jobs)
        assert set(statuses.values()) <= {"completed", "past the frontier"}, (name, statuses)
        assert all(statuses[j.name] == "completed" for j in jobs if j.combo[key] == first)
        assert (out / "table.md").is_file()


def gpu_studies(*args: str) -> subprocess.CompletedProcess:
    """scripts/gpu_studies.sh with ``args``, offline, its output captured."""
    return subprocess.run(
        ["bash", "scripts/gpu_studies.sh", *args],
        cwd=ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gpu_studies_refuses_to_run_for_real_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    done = gpu_studies("minutes=1")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu_studies.sh: no CUDA device here; run on a GPU machine, or --dry-run on the CPU"
    )


def test_gpu_studies_on_a_cluster_launcher_needs_no_gpu_where_the_queue_runs():
    """launcher=slurm: the queue may run on a login node; the CUDA check is the jobs'. An
    unknown launcher shows the check was passed on to the queue (one line, exit 2)."""
    done = gpu_studies("launcher=slurmm", "minutes=1")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: launcher=slurmm: unknown; choices: local,")


@pytest.mark.parametrize(
    ("option", "message"),
    [("jobs=0", "jobs=0: must be positive"), ("minutes=-1", "minutes=-1.0: must be positive")],
)
def test_a_queue_option_out_of_range_is_one_line(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as stop:
        run_queue(tmp_path, {"a": {"claim": "x"}}, option)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


@pytest.mark.parametrize(
    "cuda, launcher, folder",
    [(False, "local", "cpu"), (True, "local", "gpu"), (False, "slurm", "slurm")],
)
def test_the_results_folder_names_the_machine_the_jobs_ran_on(monkeypatch, cuda, launcher, folder):
    """tag=auto (the default): a CPU run's records are not filed under gpu/."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cfg, _, _ = queue.parse(["studies=x.yaml", f"launcher={launcher}"])
    assert cfg.tag == folder
    assert cfg.results == "multirun/studies"  # outside docs/: publishing is results=docs/claims


RULE = {"kind": "choice", "reads": ["s/gpu"], "groups": ["model"]}


@pytest.mark.parametrize(
    "rule, extra, message",
    [
        ({**RULE, "kind": "best"}, {}, "rule kind 'best' is unknown; valid: choice, edge"),
        ({**RULE, "reads": ["other/gpu"]}, {}, "rule reads 'other/gpu', which no study"),
        ({**RULE, "colour": 1}, {}, "rule option 'colour' is not one of choice's"),
        (RULE, {"cases": [{"seed": 1}]}, "give cases (designed) or rule (chosen), not both"),
        (
            {"kind": "fill", "reads": ["s/gpu"], "settings": [12]},
            {},
            "a fill rule needs key: the setting its frontier runs over",
        ),
    ],
    ids=["unknown kind", "undeclared stage", "unknown option", "both", "no key"],
)
def test_a_bad_rule_is_one_line_naming_the_file_and_the_fix(tmp_path, rule, extra, message):
    studies = {
        "s": {"claim": "s", "overrides": TINY_ADDITION, "cases": [{"seed": 1}]},
        "t": {"claim": "t", "overrides": TINY_ADDITION, "rule": rule, **extra},
    }
    path = write_studies(tmp_path / "studies.yaml", studies)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        study_queue.load_studies(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_rule_waits_for_its_inputs_then_chooses_once_and_records_it(tmp_path, capsys):
    """The queue applies a stage's rule once the stages it reads have records, writes the
    choice beside the stage's results and reads that record afterwards."""
    studies = {
        "s": {"claim": "s", "overrides": TINY_ADDITION, "cases": [{"seed": 1}]},
        "t": {"claim": "t", "overrides": TINY_ADDITION, "rule": RULE},
    }
    assert run_queue(tmp_path, studies, "only=t", "minutes=0.01") == 0
    assert "t: skipped: its rule waits for the records of" in capsys.readouterr().out
    read = tmp_path / "results" / "s" / "gpu" / "jobs" / "seed1"
    read.mkdir(parents=True)
    (read / "overrides.yaml").write_text("- model=grid2d\n- seed=1\n")
    (read / "metrics.json").write_text(json.dumps({"status": "completed", "val/acc": 1.0}))
    run_queue(tmp_path, studies, "only=t", "minutes=0.01")
    record = json.loads((tmp_path / "results" / "t" / "gpu" / "chosen.json").read_text())
    assert record["rule"] == "choice" and [c["model"] for c in record["cases"]] == ["grid2d"]
    (read / "metrics.json").unlink()  # the record stands: the choice is not remade
    run_queue(tmp_path, studies, "only=t", "minutes=0.01")
    assert json.loads((tmp_path / "results" / "t" / "gpu" / "chosen.json").read_text()) == record


def test_a_dry_runs_records_are_never_published():
    """A dry run with results=docs/claims writes ``<tag>_dry_run/`` beside the study's page:
    git ignores it, so running the documented commands leaves ``git status`` clean."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the repository's git checkout")
    folder = study_queue.results_folder(ROOT / "docs" / "claims", "paper_regime", "cpu", True)
    done = subprocess.run(
        ["git", "check-ignore", "-q", str(folder / "queue.json")], cwd=ROOT, check=False
    )
    assert done.returncode == 0, f"{folder} is not git-ignored"
    kept = study_queue.results_folder(ROOT / "docs" / "claims", "paper_regime", "cpu", False)
    done = subprocess.run(["git", "check-ignore", "-q", str(kept / "queue.json")], cwd=ROOT)
    assert done.returncode == 1  # published records are not

"""``dry_run=true``: every refusal the real run finds, found before anything is written; one
line per job of a sweep; resume and completed runs told apart; nothing created."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from gridlstm.run import dry_run
from tests import test_bad_input
from tests.conftest import CONF, TINY, run_cli
from tests.test_bad_input import TRAIN, ckpt, fill, snapshot

earlier = test_bad_input.earlier  # the finished run no bad command may touch (a fixture)


def plan(argv: list[str], capsys) -> tuple[int, list[str]]:
    before = torch.get_num_threads()
    try:
        code = dry_run.run(argv, CONF)
    finally:
        torch.set_num_threads(before)
        GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "fragments"), [(a, f) for a, *f in TRAIN], ids=[a[:50] for a, *_ in TRAIN]
)
def test_a_dry_run_finds_each_refusal_of_the_real_run(
    earlier,
    tmp_path,
    monkeypatch,
    capsys,
    args,
    fragments,
):
    """The same bad configs as tests/test_bad_input.py: exit 2 and the same message, in one
    job line, and no file or directory created anywhere."""
    monkeypatch.chdir(tmp_path)
    places = {"last": ckpt(earlier, "last"), "files": str(earlier / "files")}
    own = fill(args, places).split(" ")
    base = [o for o in TINY if not o.startswith("task.")] if "task=" in args else TINY
    before = snapshot(earlier)
    code, lines = plan([*base, "logger=csv", f"hydra.run.dir={tmp_path / 'new_run'}", *own], capsys)
    assert code == 2, lines
    assert len(lines) == 2 and "refuse: " in lines[0] and "1 would be refused" in lines[1], lines
    for fragment in fragments:
        assert fill(fragment, places) in lines[0], lines
    assert list(tmp_path.iterdir()) == []
    assert snapshot(earlier) == before


def test_a_sweep_is_one_line_per_job_and_a_refused_job_names_the_sweep_dir(
    earlier,
    tmp_path,
    monkeypatch,
    capsys,
):
    """Job 0's directory holds a completed run (refused, as the real sweep would), job 1's
    is new (would start, with the width a parameter budget solves); nothing is touched."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    shutil.copytree(earlier / "run", sweep / "0")
    before = snapshot(sweep)
    argv = ["-m", *TINY, "logger=csv", f"hydra.sweep.dir={sweep}", "seed=1,2", "param_budget=3000"]
    code, lines = plan(argv, capsys)
    assert code == 2, lines
    assert lines[0].startswith("dry run: job 0 [") and "seed=1" in lines[0]
    assert "refuse: run directory" in lines[0] and "choose another hydra.sweep.dir" in lines[0]
    assert lines[1].startswith("dry run: job 1 [") and f"start in {sweep / '1'}" in lines[1]
    assert "parameters" in lines[1] and "hidden_size=" in lines[1]
    assert lines[2] == "dry run: 2 jobs: 1 would be refused, 1 would start; nothing was written"
    assert snapshot(sweep) == before and sorted(p.name for p in sweep.iterdir()) == ["0"]


def test_a_presets_own_sweep_is_expanded_as_hydras_basic_sweeper_does():
    """``-m experiment=addition_cpu`` runs the preset's ``hydra.sweeper.params`` (3 models x 2
    depths); the command line's value of a key the preset sweeps wins, as in Hydra."""
    try:
        jobs = dry_run.expand(["experiment=addition_cpu"], CONF)
        assert len(jobs) == 6 and jobs[0] == [
            "model=stacked_lstm",
            "model.net.num_layers=2",
            "experiment=addition_cpu",
        ]
        jobs = dry_run.expand(["experiment=addition_cpu", "model=grid2d", "seed=1,2"], CONF)
        assert [j[:2] for j in jobs[:2]] == [["model=grid2d", "model.net.num_layers=2"]] * 2
        assert len(jobs) == 4 and [j[-1] for j in jobs[:2]] == ["seed=1", "seed=2"]
        assert len(dry_run.expand(["seed=1,2,3"], CONF)) == 3  # no preset sweep: the line's
    finally:
        GlobalHydra.instance().clear()


def test_resume_auto_says_from_which_step_and_a_completed_run_needs_nothing(
    earlier,
    tmp_path,
    monkeypatch,
    capsys,
):
    monkeypatch.chdir(tmp_path)
    done, cut = tmp_path / "done", tmp_path / "cut"
    shutil.copytree(earlier / "run", done)
    shutil.copytree(earlier / "run", cut)
    (cut / "metrics.json").unlink()  # a run stopped before it wrote its record
    before = snapshot(tmp_path)
    argv = [*TINY, "logger=csv", "resume=auto"]
    code, lines = plan([*argv, f"hydra.run.dir={cut}"], capsys)
    assert code == 0 and "resume from step 6 (" in lines[0] and "last.ckpt" in lines[0], lines
    code, lines = plan([*argv, f"hydra.run.dir={done}"], capsys)
    assert code == 0 and ": done (" in lines[0] and "nothing to do" in lines[0], lines
    code, lines = plan([*argv, f"hydra.run.dir={done}", "model=stacked_lstm"], capsys)
    assert code == 2 and "holds a run with other settings: model" in lines[0], lines
    assert snapshot(tmp_path) == before


def test_train_py_dry_run_creates_no_directory(tmp_path: Path):
    """Through train.py as a user types it: exit 0, one line per job, no outputs/ or
    multirun/ folder, and no training (no checkpoint anywhere)."""
    result = run_cli(["-m", "dry_run=true", *TINY, "seed=1,2,3"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split("]")[0][-6:] for line in lines[:3]] == ["seed=1", "seed=2", "seed=3"]
    assert all(": start in multirun/" in line for line in lines[:3]), lines
    assert lines[-1] == "dry run: 3 jobs: 3 would start; nothing was written"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dry_run=maybe"], "dry_run=maybe: choose true or false"),
        (["dry_run=true", "--cfg", "job"], "does not combine with --cfg"),
    ],
)
def test_a_bad_dry_run_switch_is_one_line(tmp_path, args, message):
    result = run_cli(args, tmp_path, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_sweep_with_cfg_job_points_to_the_dry_run(tmp_path):
    """``-m ... --cfg job`` was Hydra's traceback; now one line naming dry_run=true."""
    result = run_cli(["-m", "seed=1,2", "--cfg", "job"], tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --cfg shows one config and -m runs a sweep: check every job of the sweep with "
        "dry_run=true (python train.py -m ... dry_run=true), or drop -m to see one config"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_and_an_override_that_does_not_parse(tmp_path, capsys):
    """Found as the real run finds them: the job's directory cannot be created (refused, in
    its job line), a sweep override Hydra cannot parse (one line, exit 2)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, lines = plan([*TINY, f"hydra.run.dir={blocker}/run"], capsys)
    assert code == 2 and "refuse: hydra.run.dir=" in lines[0] and "cannot be created" in lines[0]
    assert dry_run.run(["-m", "seed=1,,2)"], CONF) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]

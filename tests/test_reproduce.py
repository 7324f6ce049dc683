"""Records that re-run: what a record says made it (gridlstm.run.provenance, code), a study's
jobs pinned to one commit (gridlstm.analysis.studies.pins), and ``python -m gridlstm.rerun``.

The end-to-end tests run the package from a throwaway git repository (a copy of this one's
source in a commit of its own), so that they can commit changes under a running queue."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gridlstm import rerun
from gridlstm.analysis.reproduce import compare
from gridlstm.analysis.studies import pins
from gridlstm.run import code, provenance
from gridlstm.run.callbacks import STOP_ENV, Fingerprint, fingerprint_steps
from gridlstm.run.errors import ConfigError
from tests.conftest import ROOT, offline_env
from tests.test_queue import TINY_ADDITION

TINY_JOB = [  # the queue tests' tiny job: 2 epochs of 5 steps, every step logged, one thread
    *(o for o in TINY_ADDITION if not o.startswith("task.datamodule.batches_per_epoch")),
    "task.datamodule.batches_per_epoch=5",
    "trainer.max_steps=10",
    "trainer.log_every_n_steps=1",
    "hardware.threads=1",
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git repository holding this project's source in one commit."""
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
    shutil.copytree(ROOT / "src", root / "src", ignore=ignore)
    shutil.copytree(ROOT / "conf", root / "conf", ignore=ignore)
    for name in ("train.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, root / name)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def env_of(repo: Path) -> dict[str, str]:
    """The test environment, importing the package from ``repo``."""
    env = offline_env()
    env["PYTHONPATH"] = f"{repo / 'src'}:{env['PYTHONPATH']}"
    env.pop("GRIDLSTM_CONF", None)
    return env


def command(repo: Path, module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=repo,
        env=env_of(repo),
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


# --- what a record says made it ------------------------------------------------------------


def test_outside_a_git_checkout_the_code_is_no_commit_never_an_error(tmp_path):
    package = tmp_path / "site-packages" / "gridlstm"
    package.mkdir(parents=True)
    assert code.checkout_root(package) is None
    assert code.current(package) == code.Code(code.NO_COMMIT, False)


def test_a_package_inside_a_checkout_that_is_not_its_source_has_no_commit(repo, tmp_path):
    """A virtual environment inside a clone lies in its work tree without being its source."""
    package = repo / ".venv" / "lib" / "site-packages" / "gridlstm"
    package.mkdir(parents=True)
    try:
        assert code.checkout_root(package) is None
        assert code.current(package).commit == code.NO_COMMIT
    finally:
        shutil.rmtree(repo / ".venv")


def test_a_process_records_the_code_it_read_first_not_the_checkout_of_a_later_job(repo):
    """A sweep's jobs run in one process: an edit made mid-sweep is not what later jobs ran."""
    package = repo / "src" / "gridlstm"
    code.running.cache_clear()
    first = code.running(package)
    init = package / "__init__.py"
    before = init.read_text()
    init.write_text(before + "# an edit mid-sweep\n")
    try:
        assert code.current(package).dirty
        assert code.running(package) == first and not first.dirty
    finally:
        init.write_text(before)
        code.running.cache_clear()


def test_a_dirty_checkout_records_its_diff_beside_the_record_and_its_hash_in_it(repo, tmp_path):
    package = repo / "src" / "gridlstm"
    assert code.current(package) == code.Code(git(repo, "rev-parse", "HEAD"), False)
    init = package / "__init__.py"
    before = init.read_text()
    init.write_text(before + "# an edit\n")
    try:
        running = code.current(package)
        assert running.dirty and "+# an edit" in running.diff
        entry = provenance.code_entry(tmp_path, running)
        assert entry["diff_sha256"] == code.digest(running.diff)
        assert (tmp_path / provenance.DIFF).read_text() == running.diff
    finally:
        init.write_text(before)


def test_the_cpu_model_comes_from_the_os_else_the_platform(monkeypatch):
    assert provenance.cpu_model()
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "riscv64")
    assert provenance.cpu_model() == "riscv64"


@pytest.mark.parametrize("flags", ["fpu avx2", "fpu avx2 avx512f avx512_bf16"])
def test_the_cpu_kind_names_family_model_and_avx512_both_ways(monkeypatch, flags):
    info = (
        f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        f"model name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    )
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: info)
    wide = "with" if "avx512f" in flags else "without"
    assert provenance.cpu_kind() == f"AuthenticAMD family 26 model 2, {wide} AVX-512"
    assert provenance.cpu_model() == "AMD EPYC"


@pytest.mark.parametrize("cuda", [False, True])
def test_the_gpu_is_recorded_where_the_run_used_cuda(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(provenance, "gpu_driver", lambda: "570.1")
    found = provenance.machine(uses_cuda=True)
    assert ("gpu" in found) is cuda
    if cuda:
        assert found["gpu"] == "NVIDIA H100 80GB HBM3" and found["driver"] == "570.1"


def test_step_paths_are_the_ones_that_ran_once_each():
    choices = [("gates", "native", None), ("gates", "fused", "no GPU"), ("gates", "native", None)]
    assert provenance.steps_entry(choices) == ["gates: native"]


def test_differences_name_what_changed_between_machines():
    old = {"versions": {"torch": "2.6.0"}, "machine": {"cpu": "A", "threads": 1}}
    new = {"versions": {"torch": "2.7.1"}, "machine": {"cpu": "A", "threads": 2, "cores": 8}}
    assert provenance.differences(old, new) == ["torch 2.6.0 -> 2.7.1", "threads 1 -> 2"]


# --- the fingerprint -------------------------------------------------------------------------


def test_the_fingerprint_keeps_fixed_steps_and_survives_a_resume(monkeypatch):
    assert [s for s in range(1, 3001) if fingerprint_steps(s, 1000)] == [
        1,
        10,
        100,
        1000,
        2000,
        3000,
    ]
    first = Fingerprint()
    first.loss = {1: 2.5, 10: 1.25}
    again = Fingerprint()
    again.load_state_dict(first.state_dict())  # a resume
    assert again.record() == {"every": 1000, "train/loss": {"1": 2.5, "10": 1.25}}
    again.loss[100] = 0.5
    again.load_state_dict(first.state_dict())  # the best checkpoint, tested after fit
    assert again.record()["train/loss"] == {"1": 2.5, "10": 1.25, "100": 0.5}
    monkeypatch.setenv(STOP_ENV, "7")
    assert Fingerprint().stop_after == 7


def test_compare_finds_the_first_step_and_validation_that_differ():
    old = {
        "test/acc": 0.5,
        "wall_time_s": 3.0,
        "fingerprint": {"train/loss": {"1": 2.0, "10": 1.0}},
    }
    same = {**old, "wall_time_s": 9.0}
    assert compare(old, same, [(80, 0.1)], [(80, 0.1)]).identical
    later = {**old, "test/acc": 0.25, "fingerprint": {"train/loss": {"1": 2.0, "10": 1.5}}}
    result = compare(old, later, [(80, 0.1)], [(80, 0.1)])
    assert result.first_step == 10 and result.verdict().startswith("differs from step 10")
    assert result.largest == 0.25 and result.largest_key == "test/acc"
    unreached = compare(
        {"val/samples_to_threshold": None}, {"val/samples_to_threshold": 80}, [], []
    )
    assert unreached.unmeasured == ["val/samples_to_threshold"] and not unreached.within(1.0)
    assert unreached.verdict().endswith(
        "val/samples_to_threshold changed to or from null (0 "
        "fingerprint steps, 0 validations and 1 final metrics compared)"
    )
    curve = compare({"test/acc": 0.5}, {"test/acc": 0.5}, [(80, 0.1)], [(80, 0.2)])
    assert curve.verdict().startswith("differs from the record at the validation at 80 samples")
    short = compare(old, later, [], [], steps=5)  # the first 5 steps: step 1 only
    assert short.identical and short.steps == 1


# --- re-run: bad input ------------------------------------------------------------------------


def write_record(folder: Path, record: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(record))
    (folder / "overrides.yaml").write_text("- task=addition\n- seed=3\n")
    return folder


@pytest.mark.parametrize(
    ("record", "args", "message"),
    [
        ({"status": "completed"}, [], "names no commit"),
        (
            {"provenance": {"code": {"commit": "0" * 40}}},
            [],
            "is not in this clone's history",
        ),
        ({"status": "completed"}, ["code=" + "1" * 40], "is not in this clone's history"),
        ({"status": "completed"}, ["steps=-1"], "steps=-1"),
    ],
)
def test_a_record_that_cannot_be_rerun_is_one_line_and_exit_2(
    tmp_path, capsys, record, args, message
):
    if code.checkout_root() is None:
        pytest.skip("needs the package imported from a git checkout (a clone)")
    folder = write_record(tmp_path / "job", record)
    with pytest.raises(SystemExit) as stop:
        rerun.main([str(folder), f"out={tmp_path / 'out'}", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_folder_without_a_record_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        rerun.main([str(tmp_path)])
    assert stop.value.code == 2 and "metrics.json: missing" in capsys.readouterr().err


def test_a_snapshot_that_cannot_be_made_is_one_line(repo, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot make a snapshot"):
        code.make_snapshot(repo, git(repo, "rev-parse", "HEAD"), blocked / "snapshots")


def test_outside_a_checkout_a_queue_needs_code_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(code, "checkout_root", lambda *a: None)
    common = dict(allow_dirty=False, outs={"s": tmp_path / "o"}, studies_file=tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="code=checkout to run this copy as it is"):
        pins.choose(code_option="pinned", results=tmp_path / "r", claims=["s"], **common)
    found = pins.choose(code_option="checkout", results=tmp_path / "r", claims=["s"], **common)
    assert found["s"].snapshot is None


# --- end to end: a throwaway repository --------------------------------------------------------


def test_a_queue_runs_every_job_from_the_commit_it_pinned(repo, tmp_path):
    """A commit lands while the second job waits for a slot: both jobs run the first commit,
    imported from its snapshot (without the pin the second would run the new one)."""
    first = git(repo, "rev-parse", "HEAD")
    studies = tmp_path / "studies.yaml"
    studies.write_text(
        json.dumps({"s": {"claim": "s", "overrides": TINY_JOB, "grid": {"seed": [1, 2]}}})
    )
    args = [
        f"studies={studies}",
        "jobs=1",
        f"runs={tmp_path / 'runs'}",
        f"results={tmp_path / 'res'}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridlstm.queue", *args, "tag=cpu"],
        cwd=repo,
        env=env_of(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = tmp_path / "runs" / "s" / "seed1.log"
    deadline = time.monotonic() + 120
    while not started.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    conf = repo / "conf" / "train.yaml"
    before = conf.read_text()
    conf.write_text(before.replace("lr: 0.003", "lr: 0.002"))  # changes what a job computes
    git(repo, "commit", "-qam", "second")
    try:
        printed, _ = proc.communicate(timeout=600)
    finally:
        conf.write_text(before)
        git(repo, "commit", "-qam", "back")
    assert proc.returncode == 0, printed
    snapshot = (tmp_path / "runs" / ".code" / first).resolve()
    for seed in (1, 2):
        record = json.loads(
            (tmp_path / "res/s/cpu/jobs" / f"seed{seed}" / "metrics.json").read_text()
        )
        made = record["provenance"]
        assert made["code"] == {"commit": first, "dirty": False, "snapshot": str(snapshot)}, seed
        assert Path(made["imported_from"]).is_relative_to(snapshot)
        assert made["versions"]["torch"] and made["machine"]["cpu"]
        assert record["fingerprint"]["train/loss"].keys() == {"1", "10"}
    report = json.loads((tmp_path / "res/s/cpu/queue.json").read_text())
    assert report["code"] == {"commit": first, "how": "HEAD", "allow_dirty": False}
    assert report["runs"][-1]["commit"] == first
    # A later queue run of the stage continues at its pinned commit, not at HEAD.
    later = command(repo, "gridlstm.queue", *args, "tag=cpu", "minutes=0.01")
    assert f"commit {first[:12]} (the stage's pinned commit)" in later.stdout, later.stdout


def test_a_publishing_run_refuses_uncommitted_source_and_allow_dirty_is_recorded(repo, tmp_path):
    studies = tmp_path / "studies.yaml"
    studies.write_text(json.dumps({"s": {"claim": "s", "overrides": TINY_JOB}}))
    init = repo / "src" / "gridlstm" / "__init__.py"
    before = init.read_text()
    init.write_text(before + "# an edit\n")
    args = [f"studies={studies}", f"runs={tmp_path / 'runs'}", "results=docs/claims", "tag=cpu"]
    try:
        refused = command(repo, "gridlstm.queue", *args)
        assert not (tmp_path / "runs").exists()  # nothing started
        allowed = command(repo, "gridlstm.queue", *args, "allow_dirty=true", "minutes=0.01")
    finally:
        init.write_text(before)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: uncommitted changes to src/gridlstm/__init__.py: a run that publishes "
        "(results=docs/claims) runs committed code only; commit them, or allow_dirty=true "
        "(recorded)"
    ]
    assert allowed.returncode == 1 and "started nothing" in allowed.stdout  # no time to start
    report = json.loads((repo / "docs/claims/s/cpu/queue.json").read_text())
    shutil.rmtree(repo / "docs")
    assert report["code"]["allow_dirty"] is True


def test_rerun_reproduces_a_record_at_its_commit_and_finds_the_change_at_head(repo, tmp_path):
    job = tmp_path / "job"
    made = command(repo, "gridlstm.train", *TINY_JOB, f"hydra.run.dir={job}")
    assert made.returncode == 0, made.stderr[-2000:]
    record = json.loads((job / "metrics.json").read_text())
    assert record["fingerprint"]["train/loss"].keys() == {"1", "10"}
    conf = repo / "conf" / "train.yaml"
    before = conf.read_text()
    conf.write_text(before.replace("lr: 0.003", "lr: 0.002"))
    git(repo, "commit", "-qam", "a new rate")
    try:
        same = command(repo, "gridlstm.rerun", str(job), f"out={tmp_path / 'same'}")
        head = command(repo, "gridlstm.rerun", str(job), "code=head", f"out={tmp_path / 'head'}")
        short = command(repo, "gridlstm.rerun", str(job), "steps=3", f"out={tmp_path / 'short'}")
    finally:
        conf.write_text(before)
        git(repo, "commit", "-qam", "back")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "[rerun] identical: 2 fingerprint steps, 2 validations and" in same.stdout
    assert "machine and versions: the same as the record's" in same.stdout
    assert json.loads((tmp_path / "same" / "rerun.json").read_text())["identical"] is True
    assert head.returncode == 1
    assert "[rerun] differs from step 10" in head.stdout  # step 1's loss is before any update
    assert short.returncode == 0 and "identical: 1 fingerprint steps" in short.stdout
    stopped = json.loads((tmp_path / "short" / "run" / "metrics.json").read_text())
    assert stopped["global_step"] == 3

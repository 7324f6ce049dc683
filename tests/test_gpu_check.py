"""scripts/gpu_check.sh: the GPU check (pytest -m gpu, the bench with the GPU targets, a
smoke run of every task), here in its dry-run mode on the CPU, with every task's data
generated in its real on-disk format; and its refusals."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from tests.conftest import ROOT, offline_env, write_mnist, write_pairs


def run_check(*args: str, env: dict | None = None, timeout: int = 120):
    return subprocess.run(
        ["bash", "scripts/gpu_check.sh", *args],
        cwd=ROOT,
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_summary_and_targets(tmp_path):
    data = tmp_path / "data"
    write_mnist(data / "mnist", train=60, test=20)
    (data / "enwik8").mkdir(parents=True)
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefgh <>\n") for _ in range(40_000))
    (data / "enwik8" / "enwik8").write_text(text)
    env = {
        **offline_env(),
        "GRIDLSTM_DATA_DIR": str(data),
        "GRIDLSTM_TRANSLATION_FILE": str(write_pairs(tmp_path / "pairs.txt", count=80)),
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "check"
    done = run_check("--dry-run", f"out={out}", env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pytest -m gpu: skipped in the dry run (it needs a CUDA device)" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["step"], s["exit"]) for s in summary["steps"]] == [
        ("pytest_gpu", "skipped"),
        ("bench_float32", "0"),
        ("bench_bfloat16", "0"),
        ("step_speed", "0"),
        ("step_speed_mnist", "0"),
        ("step_speed_enwik8", "0"),
        ("smoke", "0"),
    ]
    rows = {
        shape: [(r["model"], r["depth"]) for r in got]
        for shape, got in json.loads((out / "check.json").read_text())["step_speeds"].items()
    }
    assert rows == {
        "addition15": [("grid2d", 1), ("grid2d", 2), ("stacked_lstm", 1)],
        "mnist": [("grid3d_paper", 1), ("cnn", 1)],  # synthetic pixels in the dry run
        "enwik8": [("grid2d", 1), ("stacked_lstm", 1)],  # random bytes in the dry run
    }
    check = json.loads((out / "check.json").read_text())
    assert (check["verdict"], check["problems"]) == ("pass", []), check["problems"]
    targets = json.loads((out / "targets.json").read_text())
    assert targets["device"] == "cpu (dry run)"
    assert len(targets["float32"]) == len(targets["bfloat16"]) == 6
    for task in ("addition", "memorization", "parity", "enwik8", "mnist", "translation"):
        report = json.loads(
            (out / "smoke" / f"smoke_{task}" / "gpu_dry_run" / "queue.json").read_text()
        )
        assert {j["status"] for j in report["jobs"]} == {"completed"}, (task, report["jobs"])


def test_without_a_gpu_it_refuses_and_names_the_dry_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    done = run_check()
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu_check.sh: no CUDA device here; run on a GPU machine, or --dry-run on the CPU"
    )


def test_an_unknown_argument_is_one_line_naming_the_valid_ones():
    done = run_check("--dryrun")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu_check.sh: unknown argument '--dryrun'; valid: --dry-run, out=DIR, minutes=N"
    )


def test_check_json_reads_every_step_test_target_and_smoke_run_into_one_verdict(tmp_path):
    """check.json from files in their real formats: pytest's own JUnit XML (a generated test
    file with a pass, a failure and a skip), a bench JSON with its target rows, a smoke
    queue.json."""
    import sys

    from gridlstm.benchmarks import gpu_check

    out = tmp_path / "check"
    out.mkdir()
    (tmp_path / "test_matrix.py").write_text(
        "import pytest\n"
        "def test_row_passes(): pass\n"
        "def test_row_fails(): assert False\n"
        "@pytest.mark.skip(reason='no bf16')\n"
        "def test_row_skipped(): pass\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_matrix.py",
            f"--junitxml={out / 'pytest.xml'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    target = {"target": "fused step", "row": "r", "goal": 2.0, "measured": 1.5, "met": False}
    (out / "bench_float32.json").write_text(json.dumps({"targets": [target]}))
    (out / "smoke" / "smoke_parity" / "gpu").mkdir(parents=True)
    (out / "smoke" / "smoke_parity" / "gpu" / "queue.json").write_text(
        json.dumps({"jobs": [{"job": "smoke_parity", "status": "completed"}]})
    )
    rows = [
        {"model": "grid1d", "depth": 1, "parameters": 8501285, "seconds_per_100k": 8.3},
        {"model": "grid1d", "depth": 25, "parameters": 8501285, "seconds_per_100k": 9.1},
    ]  # gridlstm.bench steps' json=; its printed log beside it is not read
    (out / "step_speed_parity.json").write_text(json.dumps({"device": "x", "rows": rows}))
    (out / "step_speed_parity.txt").write_text("grid1d depth 1: 1 parameters, 1.0 s / 100k\n")
    gpu_check.main([str(out), "NVIDIA H100", "pytest_gpu 1 30", "bench_float32 0 60"])
    check = json.loads((out / "check.json").read_text())
    assert check["device"] == "NVIDIA H100"
    assert check["step_speeds"] == {"parity": rows}
    assert check["tests"] == {
        "test_matrix.py::test_row_passes": "passed",
        "test_matrix.py::test_row_fails": "failed",
        "test_matrix.py::test_row_skipped": "skipped",
    }
    assert check["smoke"] == {"smoke_parity": {"smoke_parity": "completed"}}
    assert check["verdict"] == "fail"
    assert check["problems"] == [
        "step pytest_gpu exited 1",
        "test test_matrix.py::test_row_fails failed",
        "target fused step (float32) not met: 1.5 against 2.0",
    ]
    # The CPU dry run does not judge GPU targets; everything else passing gives "pass".
    (out / "pytest.xml").unlink()
    gpu_check.main([str(out), "cpu (dry run)", "pytest_gpu skipped 0", "bench_float32 0 60"])
    check = json.loads((out / "check.json").read_text())
    assert (check["verdict"], check["problems"], check["tests"]) == ("pass", [], {})
    assert json.loads((out / "targets.json").read_text())["float32"] == [target]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "OUT and DEVICE are required"),
        (["{out}", "H100", "pytest 0"], "'pytest 0' is not 'STEP EXIT SECONDS'"),
        (["{out}/absent", "H100"], "is not a folder (scripts/gpu_check.sh writes it)"),
    ],
)
def test_check_json_refuses_bad_arguments_in_one_line_writing_nothing(
    tmp_path, capsys, args, message
):
    from gridlstm.benchmarks import gpu_check

    with pytest.raises(SystemExit) as exit_:
        gpu_check.main([a.format(out=tmp_path) for a in args])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.count("\n") == 0
    assert error.endswith('OUT DEVICE ["STEP EXIT SECONDS" ...]')
    assert list(tmp_path.iterdir()) == []


def test_step_speed_times_the_mnist_preset_on_synthetic_pixels_without_the_files(tmp_path):
    """The GPU check's MNIST step on a machine without MNIST's files: random pixels at the
    official sizes in a temporary data_dir, one line per model that check.json reads."""
    import sys

    from gridlstm.benchmarks.gpu_check import step_speeds

    env = {**offline_env(), "GRIDLSTM_DATA_DIR": str(tmp_path / "nothing_here")}
    command = [sys.executable, "-m", "gridlstm.bench", "steps", "steps=1", "warmup=1"]
    command.append("synthetic_mnist=1")
    command.append(f"json={tmp_path / 'step_speed_mnist.json'}")
    tiny = ["experiment=mnist_paper", "hardware=cpu", "task.datamodule.batch_size=4"]
    done = subprocess.run(
        [*command, *tiny, "--", "cnn:1"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MNIST pixels: synthetic" in done.stdout
    [row] = step_speeds(tmp_path)["mnist"]
    assert (row["model"], row["depth"]) == ("cnn", 1) and row["seconds_per_100k"] > 0
    assert not (tmp_path / "nothing_here").exists()  # nothing written where data would live
    # Its own data_dir beside another one is a contradiction: refused before any work.
    given = f"task.datamodule.data_dir={tmp_path}"
    done = subprocess.run(
        [*command, *tiny, given, "--", "cnn:1"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"gridlstm.bench steps: synthetic_mnist=1 writes its own data_dir; drop {given}"
    )


def test_step_speed_times_the_enwik8_preset_on_synthetic_bytes_without_the_file(tmp_path):
    """The enwik8 preset's step time (what its stated cost needs) on a machine without the
    100 MB file: random bytes in a temporary data_dir, read with md5=null; the record keeps
    the command's overrides, not the temporary folder's path."""
    import sys

    from gridlstm.benchmarks.gpu_check import step_speeds

    env = {**offline_env(), "GRIDLSTM_DATA_DIR": str(tmp_path / "nothing_here")}
    command = [sys.executable, "-m", "gridlstm.bench", "steps", "steps=1", "warmup=1"]
    command += ["synthetic_enwik8=1", f"json={tmp_path / 'step_speed_enwik8.json'}"]
    tiny = ["experiment=enwik8_paper", "hardware=cpu", "param_budget=20000"]
    tiny += ["task.datamodule.batch_size=4", "task.datamodule.bptt=16"]
    done = subprocess.run(
        [*command, *tiny, "--", "stacked_lstm:1"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "enwik8 bytes: synthetic" in done.stdout
    [row] = step_speeds(tmp_path)["enwik8"]
    assert (row["model"], row["depth"]) == ("stacked_lstm", 1) and row["seconds_per_100k"] > 0
    record = json.loads((tmp_path / "step_speed_enwik8.json").read_text())
    assert record["overrides"] == tiny and record["synthetic_enwik8"] is True
    assert not (tmp_path / "nothing_here").exists()
    both = [*command, "synthetic_mnist=1", *tiny, "--", "stacked_lstm:1"]
    done = subprocess.run(both, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gridlstm.bench steps: synthetic_mnist=1 and synthetic_enwik8=1: give one (each times "
        "its own task)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["steps=abc", "--", "cnn:1"], "steps=abc: steps takes a whole number >= 1"),
        (["threads=0", "--", "cnn:1"], "threads=0: threads takes a whole number >= 1"),
        (
            ["experiment=mnist_paper", "cnn:1"],
            "no '--' before the models: give [overrides] -- model:depth[,depth] ...",
        ),
        (["--", "cnn:0"], "'cnn:0' after '--' is not model:depth[,depth] (e.g. grid2d:1,2,4)"),
        (
            ["json=/no/such/folder/x.json", "--", "cnn:1"],
            "json=/no/such/folder/x.json: give a file in an existing folder",
        ),
    ],
)
@pytest.mark.parametrize(
    "command", [["-m", "gridlstm.bench", "steps"], ["scripts/step_speed.py"]], ids=["mode", "old"]
)
def test_step_speed_refuses_bad_arguments_in_one_line_before_any_work(args, message, command):
    """The benchmark's steps mode, and the script path earlier records name, alike."""
    import sys

    done = subprocess.run(
        [sys.executable, *command, *args], cwd=ROOT, capture_output=True, text=True
    )
    assert (done.returncode, done.stderr.strip(), done.stdout) == (
        2,
        f"gridlstm.bench steps: {message}",
        "",
    )


def fake_gpu_env(tmp_path) -> tuple[dict, object]:
    """A PATH whose `python` says a CUDA device named "Fake GPU 1" is there and logs every
    other call instead of running it: the script's own choices (where results go, what the
    smoke step is given) without a GPU."""
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "calls.log"
    (shim / "python").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> "{log}"\n'
        'case "$*" in *get_device_name*) echo "Fake GPU 1" ;; esac\n'
    )
    (shim / "python").chmod(0o755)
    env = offline_env()
    return {**env, "PATH": f"{shim}:{env['PATH']}"}, log


def test_on_a_gpu_results_go_to_an_ignored_folder_unless_published(tmp_path):
    """Run as documented, the check leaves git clean: its default folder is under multirun/
    (git-ignored), not docs/; publishing is out=docs/gpu_check/<device>."""
    env, log = fake_gpu_env(tmp_path)
    default = ROOT / "multirun" / "gpu_check" / "fake_gpu_1"
    try:
        done = run_check(env=env)
        assert done.returncode == 0, done.stderr
        assert "gpu_check: Fake GPU 1 -> multirun/gpu_check/fake_gpu_1" in done.stdout
        ignored = subprocess.run(["git", "check-ignore", "-q", str(default)], cwd=ROOT)
        assert ignored.returncode == 0
    finally:
        import shutil

        shutil.rmtree(default, ignore_errors=True)
    assert "gridlstm.benchmarks.gpu_check multirun/gpu_check/fake_gpu_1 Fake GPU 1" in (
        log.read_text()
    )


def test_the_smoke_step_runs_afresh_instead_of_restoring_an_earlier_checks_records(tmp_path):
    env, log = fake_gpu_env(tmp_path)
    out = tmp_path / "published"
    (out / "smoke" / "smoke_parity" / "gpu").mkdir(parents=True)
    (out / "smoke" / "smoke_parity" / "gpu" / "queue.json").write_text("{}")
    done = run_check(f"out={out}", env=env)
    assert done.returncode == 0, done.stderr
    assert not (out / "smoke").exists()  # the queue would have restored these, not run them
    (queue,) = [c for c in log.read_text().splitlines() if "gridlstm.queue" in c]
    assert f"results={out}/smoke" in queue and "runs=multirun/gpu_check_runs/" in queue


@pytest.mark.parametrize("has_file", [False, True])
def test_the_enwik8_step_time_reads_the_file_where_there_is_one_else_random_bytes(
    tmp_path, has_file
):
    """The enwik8 paper preset's cost needs its step time at the preset's shape: its two
    models at depth 3 on the GPU, on $GRIDLSTM_DATA_DIR/enwik8/enwik8 where it is."""
    env, log = fake_gpu_env(tmp_path)
    data = tmp_path / "data"
    if has_file:
        (data / "enwik8").mkdir(parents=True)
        (data / "enwik8" / "enwik8").write_bytes(b"text")
    done = run_check(f"out={tmp_path / 'out'}", env={**env, "GRIDLSTM_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    (call,) = [c for c in log.read_text().splitlines() if "experiment=enwik8_paper" in c]
    assert call.endswith("hardware=gpu -- grid2d:3 stacked_lstm:3")
    assert f"json={tmp_path / 'out'}/step_speed_enwik8.json" in call
    if has_file:
        assert f"task.datamodule.data_dir={data / 'enwik8'} task.datamodule.download=false" in call
        assert "synthetic" not in call
    else:
        assert "synthetic_enwik8=1" in call and "data_dir" not in call

"""What a new user sees first: the run directory and config at start, a progress title that
counts steps, no FLOPs line, a thread setting that reaches torch, a curve point even for a
run shorter than one epoch, samples and images in the offline W&B folder, ``--help`` for
every tool, and documentation that stays inside the repository."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from gridlstm.run import threads
from gridlstm.run.console import StepProgressBar
from tests.conftest import ROOT, TINY, offline_env, task_overrides


@pytest.mark.slow  # 14 s; the default suite near 10 minutes on 2 cores
def test_console_names_the_run_directory_first_and_prints_the_config(cli):
    result = cli(*TINY, "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = cli.cwd.glob("outputs/*/*")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0] == f"run directory: {run}"
    assert lines[1] == "config" and any("├── model" in line for line in lines)
    assert "FLOPs" not in result.stdout + result.stderr
    assert "Tip:" not in result.stdout + result.stderr
    # Lightning's echo of default arguments, its "last checkpoint" warnings on a fresh run
    # directory, and the config check's trainer stay out of the console.
    console = result.stdout + result.stderr
    assert console.count("GPU available:") == 1
    assert "was configured so 100%" not in console
    assert "ckpt_path=None" not in console and 'ckpt_path="last"' not in console
    quiet = cli(*TINY, "logger=none", "print_config=false")
    assert "├── model" not in quiet.stdout


def test_a_log_file_gets_plain_progress_lines(tmp_path):
    """stdout to a file (Slurm, nohup): a line per interval with step, samples, loss, the
    main metric, samples/s, elapsed and remaining time; no rich bar escape codes."""
    log = tmp_path / "train.log"
    with log.open("w") as out:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "train.py"),
                *TINY,
                "logger=none",
                "print_config=false",
                "trainer.max_steps=12",
                "callbacks.progress_bar.interval_s=0.001",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in log.read_text().splitlines() if line.startswith("step ")]
    assert len(lines) >= 10, log.read_text()
    pattern = (
        r"step (\d+)/12 \(\d+%\) · ([\d,]+) samples · train/loss [\d.e+-]+ · "
        r"(val/acc [\d.e+-]+ · )?[\d,]+ samples/s · elapsed \d+:\d\d"
        r"( · remaining \d+:\d\d)?"
    )
    for line in lines:
        assert re.fullmatch(pattern, line), line
    steps = [int(re.match(r"step (\d+)", line).group(1)) for line in lines]
    assert steps == sorted(steps) and steps[-1] == 12
    assert lines[-1].startswith("step 12/12 (100%) · 96 samples")  # batch 8
    assert any("val/acc" in line for line in lines)  # after the first validation
    assert "remaining" in lines[0] and "remaining" not in lines[-1]
    assert "\x1b[" not in log.read_text()


def test_progress_bar_is_rich_on_a_terminal_and_plain_elsewhere(monkeypatch):
    from gridlstm.run.console import PlainProgressBar, progress_bar

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert isinstance(progress_bar("val/acc"), StepProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    bar = progress_bar("val/acc", interval_s=5)
    assert isinstance(bar, PlainProgressBar) and bar.interval_s == 5
    with pytest.raises(ValueError, match="interval_s must be > 0 seconds, got 0"):
        PlainProgressBar("val/acc", interval_s=0)


def test_progress_title_counts_steps_not_negative_epochs():
    bar = StepProgressBar()
    trainer = SimpleNamespace(max_steps=8000, max_epochs=-1, global_step=750)
    bar._trainer = trainer
    assert bar._get_train_description(3) == "Epoch 3 · step 750/8000"
    bar._trainer = SimpleNamespace(max_steps=-1, max_epochs=10, global_step=0)
    assert bar._get_train_description(2) == "Epoch 2/9"


def test_thread_setting_reaches_torch(tmp_path):
    from gridlstm.run.training import train
    from tests.test_configs import compose_train

    before = torch.get_num_threads()
    try:
        cfg = compose_train(
            [*TINY, "logger=none", "hardware.threads=3", "print_config=false"], tmp_path
        )
        train(cfg)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_auto_threads_take_the_free_cores_divided_among_processes(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)
    assert threads.resolve("auto") == 8 and threads.resolve(None, processes=2) == 4
    monkeypatch.setattr(threads, "busy_cores", lambda: 6)  # another job keeps 6 cores busy
    assert threads.resolve("auto") == 2 and threads.resolve("auto", processes=4) == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 20)
    assert threads.resolve("auto") == 1
    assert threads.resolve(5) == 5
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="threads must be 'auto' or an integer >= 1"):
            threads.resolve(bad)


class FakeProcess:
    """psutil.Process with CPU times that advance by ``own`` seconds per call pair."""

    def __init__(self, own: float) -> None:
        self.calls, self.own = 0, own

    def cpu_times(self) -> tuple[float, float]:
        self.calls += 1
        return (0.0, 0.0) if self.calls == 1 else (self.own, 0.0)


def test_busy_cores_count_other_processes_on_our_cores_now(monkeypatch):
    import psutil

    # Per-core busy percentages over the sample: cores 0 and 2 are ours.
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [100.0, 90.0, 60.0, 0.0])
    monkeypatch.setattr(threads, "_allowed_cpus", lambda: [0, 2])
    monkeypatch.setattr(psutil, "Process", lambda: FakeProcess(own=0.0))
    assert threads.sample_busy_cores(0.5) == pytest.approx(1.6)
    assert threads.busy_cores() == 2  # 1.6 rounds to 2 busy cores
    # This process's own CPU time over the sample (0.3 s of 0.5 s) is not another job's.
    monkeypatch.setattr(psutil, "Process", lambda: FakeProcess(own=0.3))
    assert threads.sample_busy_cores(0.5) == pytest.approx(1.0)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [10.0, 100.0, 20.0, 100.0])
    monkeypatch.setattr(psutil, "Process", lambda: FakeProcess(own=0.0))
    assert threads.busy_cores() == 0  # the other cores' load is not ours to avoid
    monkeypatch.setattr(threads, "_allowed_cpus", lambda: None)  # no affinity: every core
    assert threads.busy_cores() == 2


def test_busy_cores_see_a_process_that_started_a_moment_ago():
    """A load average would not: one spinning process adds ~0.02 to it in the first second."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert threads.sample_busy_cores(0.5) >= 0.7
    finally:
        spinner.kill()
        spinner.wait()


def test_bad_thread_setting_is_one_line(cli):
    result = cli(*TINY, "logger=none", "hardware.threads=0")
    assert result.returncode == 2
    assert "error: hardware=cpu: threads must be 'auto' or an integer >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_shorter_than_one_epoch_still_validates_once(cli):
    short = [o for o in TINY if not o.startswith(("trainer.max_steps", "task.datamodule.batches"))]
    result = cli(
        *short, "task.datamodule.batches_per_epoch=10", "trainer.max_steps=4", "logger=csv"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = cli.cwd.glob("outputs/*/*")
    assert (run / "checkpoints" / "best-step4.ckpt").is_file()
    with (run / "csv" / "metrics.csv").open() as handle:
        points = [r for r in csv.DictReader(handle) if r.get("val/acc")]
    assert len(points) == 1


def test_training_values_are_logged_on_the_steps_lightning_writes(tmp_path, monkeypatch):
    """Per-step values reach the CSV every log_every_n_steps steps with every key, and
    ``self.log`` is not called on the steps whose values no logger would see."""
    import lightning as L

    from gridlstm.run.training import train
    from tests.test_configs import compose_train

    calls: list[str] = []
    original = L.LightningModule.log

    def spy(self, name, *args, **kwargs):
        calls.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(L.LightningModule, "log", spy)
    overrides = [o for o in TINY if not o.startswith("trainer.log_every_n_steps")]
    cfg = compose_train(
        [*overrides, "logger=csv", "trainer.log_every_n_steps=2", "print_config=false"], tmp_path
    )
    metrics = train(cfg)
    with (tmp_path / "csv" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == [1, 3, 5]
    for row in rows:
        assert row["train/grad_norm"] and row["train/samples_seen"]
    assert float(rows[-1]["train/samples_seen"]) == 6 * 8
    assert calls.count("train/loss") == 3 and calls.count("train/grad_norm") == 3
    assert metrics["train/loss"] == pytest.approx(float(rows[-1]["train/loss"]))


@pytest.mark.parametrize(
    ("task", "model", "pattern"),
    [
        ("text", "grid2d", "media/table/val/samples_*.table.json"),
        ("mnist", "cnn", "media/images/val/misclassified_*.png"),
    ],
)
def test_offline_wandb_folder_holds_samples_and_images(cli, tmp_path, task, model, pattern):
    overrides = task_overrides(task, tmp_path)
    result = cli(
        f"task={task}",
        f"model={model}",
        *overrides,
        "logger=wandb",
        "trainer.val_check_interval=2",
        "trainer.check_val_every_n_epoch=null",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = list(cli.cwd.glob(f"outputs/*/*/wandb/offline-run-*/files/{pattern}"))
    assert found, sorted(p.name for p in cli.cwd.glob("outputs/*/*/wandb/offline-run-*/files/**/*"))


HELP = """
import contextlib, io, runpy, sys
for tool in sys.argv[1:]:
    sys.argv, out = [f"gridlstm.{tool}", "--help"], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module(f"gridlstm.{tool}", run_name="__main__")
        except SystemExit as stop:
            assert stop.code in (0, None), (tool, stop.code)
    assert f"gridlstm.{tool}" in out.getvalue(), (tool, out.getvalue())
    print("help:", tool)
"""


def test_every_tool_answers_help(tmp_path):
    """Each command's ``python -m`` entry (its ``__main__`` block), in one interpreter."""
    tools = ["sample", "tables", "bench", "translate", "evaluate", "train"]
    command = [sys.executable, "-c", HELP, *tools]
    result = subprocess.run(
        command, cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [word for tool in tools for word in ("help:", tool)]


QUICK_HELP = """
import contextlib, io, runpy, sys
tool = sys.argv[1]
sys.argv = [f"gridlstm.{tool}", "--help"]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module(f"gridlstm.{tool}", run_name="__main__")
    except SystemExit:
        pass
print(" ".join(sorted({"torch", "lightning", "wandb"} & set(sys.modules))))
"""


@pytest.mark.parametrize(
    "tool", ["train", "evaluate", "sample", "translate", "tables", "bench", "queue", "rerun"]
)
def test_help_imports_neither_torch_nor_lightning(tool, tmp_path):
    """``--help`` answers in a fraction of a second: torch, Lightning and W&B load only when
    a command starts its work (they take seconds to import)."""
    command = [sys.executable, "-c", QUICK_HELP, tool]
    result = subprocess.run(
        command, cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"--help of {tool} imported {result.stdout.strip()}"


OUTSIDE = re.compile(
    r"GRID_LSTM_SPEC|ARCHITECTURE\.md|\.\./shared|\bspec section|\bthe spec\b", re.I
)
DOC_LINK = re.compile(r"docs/[\w./-]+\.(?:md|png|json|py)")


def test_code_config_and_readme_refer_only_to_documents_in_the_repository():
    files = [
        ROOT / "README.md",
        *ROOT.glob("src/**/*.py"),
        *ROOT.glob("conf/**/*.yaml"),
        *ROOT.glob("docs/**/*.md"),
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not OUTSIDE.search(text), (path, OUTSIDE.search(text).group(0))
        for link in DOC_LINK.findall(text):
            assert (ROOT / link).is_file(), (path, link)
    assert (ROOT / "LICENSE").is_file() and "MIT" in (ROOT / "LICENSE").read_text()


def test_the_text_cpu_data_command_works_in_a_fresh_clone(tmp_path):
    preset = (ROOT / "conf" / "experiment" / "text_cpu.yaml").read_text()
    (command,) = [
        line.split("#", 1)[1].strip() for line in preset.splitlines() if "pydoc_data" in line
    ]
    result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "pydoc_topics.txt").stat().st_size > 100_000


def test_the_docs_list_every_option_of_every_config_group():
    """A new user learns the choices from docs/configuration.md's config-group table."""
    readme = (ROOT / "docs" / "configuration.md").read_text()
    table = readme[readme.index("| group | options |") :]
    table = table[: table.index("\n\n")]
    for group in ("model", "task", "hardware", "logger", "experiment", "debug"):
        for option in sorted((ROOT / "conf" / group).glob("*.yaml")):
            assert f"`{option.stem}`" in table, f"{group}={option.stem} is not in the table"


def test_lightning_prints_each_message_once_where_logging_was_configured_first():
    """A parallel launcher's worker: Hydra configures the root logger before Lightning is
    imported, and every Lightning line appeared twice (its package's handler and Hydra's)."""
    code = """
import logging, sys
logging.basicConfig(stream=sys.stderr, format="[hydra] %(message)s", level=logging.INFO)
import lightning  # noqa: F401
from lightning.pytorch.utilities import rank_zero_info
from gridlstm.run.console import quiet_third_party
quiet_third_party()
rank_zero_info("GPU available: False")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("GPU available: False") == 1, done.stderr

"""Sweeps and multi-process training: each job trains exactly once, in its own directory,
with its own W&B run; DDP runs log the same metric names as single-process ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

CPU_MULTINODE = [
    "hardware=multinode",
    "hardware.accelerator=cpu",
    "hardware.devices=2",
    "hardware.num_nodes=1",
    "hardware.precision=32-true",
    "hardware.strategy.process_group_backend=gloo",
]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]


def sweep_jobs(root: Path) -> tuple[Path, list[Path]]:
    """The one sweep directory under multirun/ and its job directories."""
    sweeps = [p.parent for p in root.glob("multirun/**/multirun.yaml")]
    assert len(sweeps) == 1, sweeps  # a child re-running the sweep would add another
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    return sweeps[0], jobs


def trained_jobs(result, root: Path, count: int) -> list[dict]:
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("Launching 2 jobs") + result.stderr.count("Launching 2 jobs") >= 1
    _, jobs = sweep_jobs(root)
    assert [job.name for job in jobs] == [str(i) for i in range(count)]
    metrics = []
    for job in jobs:
        assert len(list(job.glob("**/metrics.json"))) == 1
        metrics.append(json.loads((job / "metrics.json").read_text()))
    return metrics


def test_multirun_gives_one_directory_and_one_offline_wandb_run_per_job(cli):
    result = cli("-m", *TINY, "logger=wandb", "model.net.hidden_size=12,16")
    metrics = trained_jobs(result, cli.cwd, 2)
    assert metrics[0]["params"] != metrics[1]["params"]  # the swept value took effect
    sweep, jobs = sweep_jobs(cli.cwd)
    group = str(sweep.relative_to(cli.cwd)).encode()
    run_ids = set()
    for job in jobs:
        (run_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        run_ids.add(run_file.stem)
        assert group in run_file.read_bytes()  # the sweep groups its jobs in W&B
    assert len(run_ids) == 2


# 25-28 s; DDP also runs in the default suite through the language-model test below.
@pytest.mark.slow
def test_ddp_cpu_run_logs_the_same_metrics_as_a_cpu_run(cli):
    single = cli(*TINY, "logger=none")
    ddp = cli(*TINY, "logger=none", "hardware=ddp_cpu")
    assert single.returncode == 0 and ddp.returncode == 0, ddp.stderr[-4000:]
    runs = sorted(cli.cwd.glob("outputs/*/*/metrics.json"))
    assert len(runs) == 2
    by_world = {}
    for path in runs:
        world = 2 if (path.parent / "train_rank1.log").exists() else 1
        by_world[world] = json.loads(path.read_text())
    assert set(by_world) == {1, 2}
    assert by_world[1].keys() == by_world[2].keys()
    assert by_world[2]["samples_seen"] == 2 * by_world[1]["samples_seen"]


@pytest.mark.slow  # DDP itself stays in the default suite (same metrics as one process)
def test_ddp_cpu_multirun_trains_each_job_once_on_two_processes(cli):
    result = cli("-m", *TINY, "logger=none", "hardware=ddp_cpu", "model.net.hidden_size=12,16")
    metrics = trained_jobs(result, cli.cwd, 2)
    _, jobs = sweep_jobs(cli.cwd)
    for job, job_metrics in zip(jobs, metrics, strict=True):
        # rank 1 ran this job (its own log) and both ranks' samples were counted once
        assert (job / "train_rank1.log").exists()
        assert job_metrics["samples_seen"] == 2 * 6 * 8
        assert job_metrics["global_step"] == 6


@pytest.mark.slow  # keeps the default suite near 10 minutes on 2 cores
def test_externally_launched_multirun_shares_one_sweep(cli):
    """The multi-node mechanism, on one machine: torchrun starts the ranks, every rank runs
    the same sweep, each job is trained once by both."""
    result = cli(
        "-m",
        *TINY,
        "logger=none",
        *CPU_MULTINODE,
        "model.net.hidden_size=12,16",
        prefix=[*TORCHRUN, "--standalone"],
    )
    metrics = trained_jobs(result, cli.cwd, 2)
    sweep, _ = sweep_jobs(cli.cwd)
    assert sweep.name.startswith("torchrun-")
    assert [m["samples_seen"] for m in metrics] == [96, 96]


def ddp_run_against_one_process(cli, args, module_class, datamodule) -> tuple[dict, dict]:
    """Train ``args`` on 2 CPU processes; return its metrics.json and a one-process
    validation of its best checkpoint on ``datamodule``."""
    from tests.conftest import quiet_trainer

    result = cli(*args, "logger=none", "hardware=ddp_cpu")
    assert result.returncode == 0, result.stderr[-4000:]
    [metrics_file] = cli.cwd.glob("outputs/*/*/metrics.json")
    [best] = metrics_file.parent.glob("checkpoints/best-*.ckpt")
    module = module_class.load_from_checkpoint(best, map_location="cpu")
    [single] = quiet_trainer().validate(module, datamodule=datamodule, verbose=False)
    return json.loads(metrics_file.read_text()), single


def test_ddp_cpu_language_model_scores_the_whole_split_once(cli, tmp_path):
    """Each rank scores its own evaluation streams; bits/char summed over both ranks equals
    a one-process evaluation of the same checkpoint."""
    from gridlstm.data import TextDataModule
    from gridlstm.tasks import LanguageModelModule
    from tests.conftest import TINY_LM, write_corpus

    corpus = write_corpus(tmp_path / "corpus.txt", 3000)
    args = ["task=text", f"task.path={corpus}", *TINY_LM, "trainer.val_check_interval=3"]
    dm = TextDataModule(corpus, bptt=8, batch_size=4, eval_batch_size=3)
    metrics, single = ddp_run_against_one_process(cli, args, LanguageModelModule, dm)
    assert metrics["val/bpc"] == pytest.approx(single["val/bpc"], rel=1e-5)
    assert metrics["samples_seen"] == 6 * 4 * 2


@pytest.mark.slow  # the language-model DDP scoring test stays in the default suite
def test_ddp_cpu_mnist_scores_every_image_once(cli, tmp_path):
    from gridlstm.data import MNISTDataModule
    from gridlstm.tasks import ImageClassificationModule
    from tests.conftest import task_overrides

    args = ["task=mnist", "model=cnn", *task_overrides("mnist", tmp_path)]
    dm = MNISTDataModule(
        tmp_path / "mnist", download=False, strict_sizes=False, val_size=20, eval_batch_size=10
    )
    metrics, single = ddp_run_against_one_process(
        cli, [*args, "trainer.val_check_interval=2"], ImageClassificationModule, dm
    )
    assert metrics["val/error"] == pytest.approx(single["val/error"])
    assert metrics["samples_seen"] == 4 * 8 * 2


@pytest.mark.slow  # the language-model DDP scoring test stays in the default suite
def test_ddp_cpu_translation_scores_every_sentence_once(cli, tmp_path):
    """Each rank decodes its own dev sentences; BLEU over the gathered translations equals a
    one-process validation of the same checkpoint."""
    from gridlstm.data import TranslationDataModule
    from gridlstm.tasks import TranslationModule
    from tests.conftest import task_overrides

    args = ["task=translation", "model=lstm_attention", *task_overrides("translation", tmp_path)]
    dm = TranslationDataModule(
        tmp_path / "pairs.txt",
        val_size=6,
        test_size=6,
        src_vocab_size=280,
        tgt_vocab_size=280,
        eval_batch_size=8,
    )
    metrics, single = ddp_run_against_one_process(
        cli, [*args, "trainer.val_check_interval=2"], TranslationModule, dm
    )
    assert metrics["val/bleu"] == pytest.approx(single["val/bleu"])
    assert metrics["val/loss"] == pytest.approx(single["val/loss"], rel=1e-5)
    assert metrics["samples_seen"] == 4 * 8 * 2


@pytest.mark.slow  # 43-49 s on 2 cores: the default suite stays near 10 minutes
def test_ddp_cpu_language_model_resume_restores_each_ranks_carried_state(cli, tmp_path):
    """Each rank reads its own text streams and carries its own BPTT state: a run resumed
    mid-epoch from step 6 on 2 processes ends exactly as the run that never stopped (with
    rank 0's state on both ranks, as checkpoints once held, it does not)."""
    from tests.conftest import TINY_LM, write_corpus
    from tests.test_resume import final_numbers

    corpus = write_corpus(tmp_path / "corpus.txt", 3000)
    args = [
        "task=text",
        f"task.path={corpus}",
        *TINY_LM,
        "trainer.val_check_interval=3",
        "logger=none",
        "hardware=ddp_cpu",
        "hardware.threads=1",
    ]
    runs = {name: tmp_path / name for name in ("straight", "first", "resumed")}
    last = runs["first"] / "checkpoints" / "last.ckpt"
    for name, extra in [
        ("straight", ["trainer.max_steps=9"]),
        ("first", ["trainer.max_steps=6"]),
        ("resumed", ["trainer.max_steps=9", f"ckpt_path={last}"]),
    ]:
        result = cli(*args, *extra, f"hydra.run.dir={runs[name]}")
        assert result.returncode == 0, result.stderr[-3000:]
    saved = __import__("torch").load(last, weights_only=True)["bptt_states"]
    assert (saved["epoch"], saved["batch"], len(saved["states"])) == (0, 6, 2)
    h = saved["states"][0][0][0]  # rank 0's first (h, m) pair
    assert not h.equal(saved["states"][1][0][0])  # two streams, two states
    record = {name: json.loads((run / "metrics.json").read_text()) for name, run in runs.items()}
    assert record["resumed"]["global_step"] == 9
    assert final_numbers(record["resumed"]) == final_numbers(record["straight"])

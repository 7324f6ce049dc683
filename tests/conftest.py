"""Shared fixtures: run ``train.py`` as users do, in a scratch directory, offline."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest

from gridlstm.data.mnist import idx_bytes

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (the default: ``-n auto``), each worker's torch takes its share of
    the cores: workers that each spin a thread per core thrash. Subprocesses get one thread
    (``offline_env``)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, (cores or 1) // int(workers)))


# A tiny but complete run: a few steps of every loop.
TINY = [
    "model.net.hidden_size=12",
    "model.net.num_layers=2",
    "task.datamodule.digits=2",
    "task.datamodule.batch_size=8",
    "task.datamodule.batches_per_epoch=3",
    "task.datamodule.val_size=24",
    "task.datamodule.test_size=16",
    "task.datamodule.eval_batch_size=8",
    "trainer.max_steps=6",
    "trainer.log_every_n_steps=1",
]


# A tiny language-model run (task=text / enwik8); the file comes from write_corpus.
TINY_LM = [
    "model.net.hidden_size=12",
    "model.net.num_layers=2",
    "task.datamodule.bptt=8",
    "task.datamodule.batch_size=4",
    "task.datamodule.eval_batch_size=3",
    "trainer.max_steps=6",
    "trainer.log_every_n_steps=1",
]

WORDS = [
    "grid",
    "long",
    "short",
    "term",
    "memory",
    "cells",
    "along",
    "depth",
    "and",
    "time",
    "share",
    "one",
    "block",
]


def write_corpus(path: Path, size: int = 3000, seed: int = 0) -> Path:
    """A text file of ``size`` bytes of random words (ASCII, so bytes = characters)."""
    rng = random.Random(seed)
    text = ""
    while len(text) < size:
        text += rng.choice(WORDS) + rng.choice("  \n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:size])
    return path


# A toy Chinese -> English lexicon: generated pairs are learnable (word-by-word, reordered
# only by the fixed templates below), never real data.
SUBJECTS = [("我", "I"), ("你", "you"), ("他", "he"), ("我们", "we"), ("他们", "they")]
VERBS = [("喜欢", "like"), ("看", "see"), ("有", "have"), ("要", "want")]
OBJECTS = [("猫", "cats"), ("狗", "dogs"), ("书", "books"), ("茶", "tea"), ("水", "water")]


def toy_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (zh, en) pairs such as ("我喜欢猫。", "I like cats.")."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        (s_zh, s_en), (v_zh, v_en), (o_zh, o_en) = (
            rng.choice(SUBJECTS),
            rng.choice(VERBS),
            rng.choice(OBJECTS),
        )
        en = f"{s_en} {v_en} {o_en}."
        pairs.append((f"{s_zh}{v_zh}{o_zh}。", en[0].upper() + en[1:]))
    return pairs


def write_pairs(path: Path, count: int = 60, seed: int = 0) -> Path:
    """Pairs in the Tatoeba export's format: English<TAB>Mandarin<TAB>attribution."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{en}\t{zh}\tCC-BY 2.0 (France) test #{i}"
        for i, (zh, en) in enumerate(toy_pairs(count, seed))
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# A tiny translation run (task=translation); the file comes from write_pairs.
TINY_TR = [
    "model.net.hidden_size=8",
    "model.net.num_layers=1",
    "task.datamodule.val_size=6",
    "task.datamodule.test_size=6",
    "task.datamodule.src_vocab_size=280",
    "task.datamodule.tgt_vocab_size=280",
    "task.datamodule.batch_size=8",
    "task.datamodule.eval_batch_size=8",
    "trainer.max_steps=4",
    "trainer.log_every_n_steps=1",
]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is where a bright 6x6 square sits (learnable, not trivial noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 5)
        image[2 + 12 * row : 8 + 12 * row, 1 + 5 * col : 7 + 5 * col] = 250
    return images, labels


def write_mnist(root: Path, train: int = 120, test: int = 40, gz: bool = False) -> dict:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = fake_digits(train, 0), fake_digits(test, 1)
    files = {
        "train-images-idx3-ubyte": train_x,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    for name, array in files.items():
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (raw / name).write_bytes(idx_bytes(array))
    return files


def write_sequences(path: Path, count: int = 80, seed: int = 0, step: bool = False) -> Path:
    """A CSV of token sequences (3 to 9 steps): the label is whether token 3 occurs an odd
    number of times (``step``: after each step)."""
    rng = np.random.default_rng(seed)
    lines = ["sequence,label"]
    for _ in range(count):
        tokens = rng.integers(0, 6, rng.integers(3, 10))
        odd = np.cumsum(tokens == 3) % 2
        label = " ".join(map(str, odd)) if step else str(odd[-1])
        lines.append(f"{' '.join(map(str, tokens))},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_image_folder(root: Path, per_class: int = 12, size: int = 16, seed: int = 0) -> Path:
    """PNG images in class folders (root/<class>/<n>.png): bright squares in one class,
    bright discs in the other, at random places and sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for name in ("disc", "square"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            r = int(rng.integers(2, size // 3))
            cx, cy = rng.integers(r, size - r, 2)
            inside = (
                (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
                if name == "disc"
                else (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
            )
            Image.fromarray((inside * 255).astype(np.uint8)).save(root / name / f"{n}.png")
    return root


def task_overrides(task: str, tmp_path: Path) -> list[str]:
    """Small sizes for ``task``, with the data files it reads generated under tmp_path."""
    if task == "text":
        return [*TINY_LM, f"task.path={write_corpus(tmp_path / 'corpus.txt')}"]
    if task == "translation":
        return [*TINY_TR, f"task.path={write_pairs(tmp_path / 'pairs.txt')}"]
    if task == "enwik8":
        corpus = write_corpus(tmp_path / "data" / "enwik8")
        return [
            *TINY_LM,
            f"task.datamodule.data_dir={corpus.parent}",
            f"task.datamodule.md5={md5_of(corpus)}",
            "task.datamodule.download=false",
        ]
    if task == "mnist":
        write_mnist(tmp_path / "mnist", train=60, test=20)
        return [
            "model.net.hidden_size=8",
            f"task.datamodule.data_dir={tmp_path / 'mnist'}",
            "task.datamodule.download=false",
            "task.datamodule.strict_sizes=false",
            "task.datamodule.val_size=20",
            "task.datamodule.batch_size=8",
            "task.datamodule.eval_batch_size=10",
            "trainer.max_steps=4",
        ]
    if task == "sequences":
        return [
            "model.net.hidden_size=8",
            f"task.datamodule.data_files={write_sequences(tmp_path / 'sequences.csv')}",
            "task.datamodule.batch_size=8",
            "trainer.max_steps=4",
        ]
    if task == "images":
        return [
            "model.net.hidden_size=8",
            f"task.datamodule.root={write_image_folder(tmp_path / 'images')}",
            "task.datamodule.image_size=16",
            "task.datamodule.batch_size=8",
            "trainer.max_steps=4",
        ]
    small = [o for o in TINY if not o.startswith("task.datamodule.digits")]
    return TINY if task == "addition" else small


def offline_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (this process's environment now) made offline, one thread, importable."""
    given = os.environ if environ is None else environ
    env = {k: v for k, v in given.items() if not k.startswith(("WANDB_", "HYDRA_"))}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    env.pop("PL_GLOBAL_SEED", None)
    # Launcher plugins start jobs in fresh interpreters (submitit): they import tests.signals.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# The environment before any test changed it: the zygote's, whichever test starts it.
SESSION_ENVIRON = dict(os.environ)
# Variables the interpreter, a thread pool or the suite may read when loaded: a run may differ
# from the zygote in others (PATH, which the native build extends in-process; PL_SEED_WORKERS,
# which an in-process seed_everything sets), which its child reads from its own environment.
READ_AT_IMPORT = ("GRIDLSTM_", "PYTHON", "OMP_", "MKL_", "KMP_", "LD_", "CUDA")


def read_at_import(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(READ_AT_IMPORT)}


class Zygote:
    """This worker's warm interpreter (tests/zygote.py), started on first use; ``run`` is
    ``subprocess.run`` of ``python train.py ARGS`` forked from it. Set
    GRIDLSTM_TEST_FRESH_INTERPRETER=1 to start every run in a fresh interpreter instead."""

    started: Zygote | None = None
    failed = False

    def __init__(self) -> None:
        self.env = offline_env(SESSION_ENVIRON)
        self.same = read_at_import(self.env)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            bufsize=0,  # unbuffered: select() below sees every line not yet read
        )
        first = self._answer()
        if "preamble" not in first:
            self.process.kill()
            raise RuntimeError(f"tests/zygote.py: {first.get('unsafe', first)}")
        self.preamble = first["preamble"]

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("tests/zygote.py ended")
        return json.loads(line)

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    @classmethod
    def get(cls, env: dict[str, str]) -> Zygote | None:
        """The warm interpreter, where it can stand in for a fresh one with ``env``."""
        if cls.failed or os.environ.get("GRIDLSTM_TEST_FRESH_INTERPRETER") == "1":
            return None
        if cls.started is None:
            try:
                cls.started = Zygote()
            except (OSError, RuntimeError) as error:
                cls.failed = True
                print(f"tests: fresh interpreters for train.py ({error})", file=sys.stderr)
                return None
        return cls.started if read_at_import(env) == cls.started.same else None

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str], timeout: int
    ) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch, "out"), Path(scratch, "err")
            request = {"argv": args, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            pid = self._answer()["pid"]
            try:
                ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            except BaseException:  # interrupted (Ctrl-C, pytest-timeout): as subprocess.run
                self._kill(pid)
                self._answer()  # its exit, so that the next run reads its own answers
                raise
            if not ready:
                self._kill(pid)
            rc = self._answer()["rc"]
            stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        command = [sys.executable, str(ROOT / "train.py"), *args]
        if not ready:
            raise subprocess.TimeoutExpired(command, timeout, stdout, self.preamble + stderr)
        return subprocess.CompletedProcess(command, rc, stdout, self.preamble + stderr)


def run_cli(args: list[str], cwd: Path, timeout: int = 300, prefix: list[str] | None = None):
    """``python train.py ARGS`` in ``cwd``, offline, as `subprocess.run` gives it."""
    env = offline_env()
    if prefix is None and (zygote := Zygote.get(env)) is not None:
        return zygote.run(args, cwd, env, timeout)
    command = [*(prefix or [sys.executable]), str(ROOT / "train.py"), *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def cli(tmp_path: Path):
    """``cli(*args)`` runs train.py in ``tmp_path``; outputs land in tmp_path/outputs."""

    def run(*args: str, timeout: int = 300, prefix: list[str] | None = None):
        return run_cli(list(args), tmp_path, timeout=timeout, prefix=prefix)

    run.cwd = tmp_path
    return run


def quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU Trainer for in-process tests: no logger, checkpoints, progress bar or summary."""
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    return L.Trainer(**{**defaults, **kwargs})

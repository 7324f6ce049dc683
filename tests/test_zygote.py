"""The warm interpreter the tests fork train.py runs from (tests/zygote.py) gives what a
fresh interpreter gives: exit code, stdout and stderr; a run past its timeout is killed."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import ROOT, SESSION_ENVIRON, TINY, Zygote, offline_env, run_cli


def test_a_forked_run_answers_as_a_fresh_interpreter(tmp_path):
    zygote = Zygote.get(offline_env(SESSION_ENVIRON))
    assert zygote is not None, "the tests would start every train.py run fresh"
    args = [*TINY, "print_config=tree", f"hydra.run.dir={tmp_path / 'run'}"]
    forked = zygote.run(args, tmp_path, offline_env(SESSION_ENVIRON), timeout=120)
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path,
        env=offline_env(SESSION_ENVIRON),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )
    assert forked.returncode == 2 and "print_config=tree" in forked.stderr


def test_a_run_past_its_timeout_is_killed_and_the_next_run_works(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli([*TINY, "trainer.max_steps=100000", "logger=none"], tmp_path, timeout=1)
    again = run_cli([*TINY, "print_config=tree"], tmp_path)
    assert again.returncode == 2, again.stderr


def test_another_environment_gets_a_fresh_interpreter(monkeypatch):
    """A test that sets a variable before its first run gets a fresh interpreter, and the
    zygote (started with the session's environment, whoever asks first) serves the others."""
    monkeypatch.setattr(Zygote, "started", None)
    assert Zygote.get(offline_env({**SESSION_ENVIRON, "GRIDLSTM_READ_AT_IMPORT": "1"})) is None
    assert Zygote.get(offline_env(SESSION_ENVIRON)) is not None
    # ones read when the run needs them: the native build puts ninja on PATH in-process, an
    # in-process seed_everything(workers=True) sets PL_SEED_WORKERS
    path = "/somewhere" + os.pathsep + SESSION_ENVIRON["PATH"]
    changed = {**SESSION_ENVIRON, "PATH": path, "PL_SEED_WORKERS": "1"}
    assert Zygote.get(offline_env(changed)) is not None


def test_an_interrupted_run_is_killed_and_the_next_run_works(tmp_path, monkeypatch):
    """Ctrl-C or pytest-timeout inside a run: the child is killed (as subprocess.run kills
    its child), and its exit is read so that the next run gets its own answers."""
    zygote = Zygote.get(offline_env(SESSION_ENVIRON))
    real = select.select

    def interrupted(*args):
        real(*args[:3], 2)  # the child is running by now
        raise KeyboardInterrupt

    monkeypatch.setattr(select, "select", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zygote.run([*TINY, "trainer.max_steps=100000", "logger=none"], tmp_path, zygote.env, 60)
    monkeypatch.setattr(select, "select", real)
    again = run_cli([*TINY, "print_config=tree"], tmp_path)
    assert again.returncode == 2, again.stderr


def test_a_temporary_folder_made_at_import_is_seen():
    """The zygote refuses to serve when its imports made a folder that each child would
    remove at exit (W&B's media folder did, and later runs' images had nowhere to go)."""
    from tests.zygote import import_time_folders

    before = import_time_folders()
    with tempfile.TemporaryDirectory() as folder:
        assert import_time_folders() == [*before, folder]
    assert import_time_folders() == before

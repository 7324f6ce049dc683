"""A warm interpreter the tests fork ``python train.py ...`` runs from.

Why: a fresh interpreter spends most of a tiny CLI run importing torch, Lightning (which
imports torchmetrics and torchvision) and Hydra, about ten seconds on a 2-core machine, and
the tests start some hundred of them. This process imports them once, then for each request
forks a child that becomes ``python train.py ARGS`` in the request's folder and environment:
its own pid, file descriptors, ``__main__``, exit code and interpreter shutdown (atexit,
threads joined), as a fresh interpreter's. What it cannot give: what a module does when it
is imported (its import-time output is replayed, see ``preamble``), and environment variables
read at import time, so `tests.conftest.run_cli` sends here only runs whose such variables
(`tests.conftest.READ_AT_IMPORT`) are the zygote's, and runs others as a real subprocess.

Protocol, one JSON line each way on stdin/stdout: ``{"preamble": text}`` once after the
imports (or ``{"unsafe": reason}``, then exit), then per request ``{"argv", "cwd", "env",
"out", "err"}`` -> ``{"pid"}`` and, once the child ends, ``{"rc"}`` (negative: killed by a signal).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not W&B: `import wandb` makes its media staging folder, which every child would remove at
# its exit (under the next child's images); a child imports it as a fresh interpreter does.
PRELOAD = ("torch", "lightning", "hydra", "omegaconf", "gridlstm.run.training")


def _line() -> dict | None:
    """One request from stdin, read unbuffered so that no byte is left for a child."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _say(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _threads() -> int:
    """Threads of this process (native ones too): a fork copies only the calling thread."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def import_time_folders() -> list[str]:
    """Temporary folders this process removes at exit (`tempfile.TemporaryDirectory`): a
    forked child inherits the duty and would remove them at its own exit, from under the
    zygote's later children."""
    registry = getattr(weakref.finalize, "_registry", {})
    return [
        str(info.args[0])
        for info in list(registry.values())
        if getattr(info.func, "__self__", None) is tempfile.TemporaryDirectory
    ]


def serve() -> dict | None:
    """Import, then answer requests; returns in a forked child, with its request."""
    protocol = os.dup(1)
    with tempfile.TemporaryFile() as printed, tempfile.TemporaryFile() as imports:
        os.dup2(printed.fileno(), 1)
        os.dup2(imports.fileno(), 2)
        for name in PRELOAD:
            __import__(name)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(protocol, 1)
        imports.seek(0)
        preamble = imports.read().decode(errors="replace")
        unsafe = "output on stdout while importing" if os.lseek(printed.fileno(), 0, 1) else ""
    if _threads() != 1:
        unsafe = f"{_threads()} threads after the imports"
    if folders := import_time_folders():
        unsafe = f"temporary folders made while importing, a child would remove: {folders}"
    if unsafe:
        _say({"unsafe": unsafe})
        return None
    _say({"preamble": preamble})
    while (request := _line()) is not None:
        pid = os.fork()
        if pid == 0:
            return request
        _say({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _say({"rc": os.waitstatus_to_exitcode(status)})
    return None


def become(request: dict) -> None:
    """In the child: ``python train.py ARGV`` in the request's folder, output to its files."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for source, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
        os.close(source)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = str(ROOT / "train.py")
    sys.path[0] = str(ROOT)  # a script's folder, as `python train.py` puts it
    sys.argv = [script, *request["argv"]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    child = serve()
    if child is not None:
        become(child)

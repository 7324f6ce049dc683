"""Compile and load the native CPU steps (``gridlstm_native.cpp``) on first use.

Built with `torch.utils.cpp_extension.load` into a cache directory, not at install time:
``pip install -e ".[dev]"`` then needs nothing but a C++ compiler at run time, a failed or
impossible build costs only speed (the PyTorch steps run), and the library always matches
the torch it runs against (the cache key holds torch's version, the CPU's vector
instruction set and the source's hash). The instruction set is the widest the CPU runs
(AVX-512, AVX2 or none, as ATen builds its own kernels), unless ``GRIDLSTM_NATIVE_ISA``
forces a narrower one or the compiler lacks the flags. A file lock makes parallel sweep
jobs build once and the others wait for it. The library registers its ops under
``torch.ops.gridlstm``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gridlstm_native.cpp")
ENV_SWITCH = "GRIDLSTM_NATIVE"  # 0 / false / off: never build or use the native steps
ENV_CACHE = "GRIDLSTM_NATIVE_CACHE"  # where builds go (default ~/.cache/gridlstm/native)
ENV_ISA = "GRIDLSTM_NATIVE_ISA"  # auto / avx512 / avx2 / default: which build to load
LOCK_TIMEOUT = 900.0  # seconds to wait for another process's build

_STATE: dict[str, object] = {}  # "loaded": bool, "reason": str, "seconds": float, "path": str


OFF = ("0", "false", "off", "no")
ON = ("", "1", "true", "on", "yes")
_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """One warning line per distinct message and process (sweeps import this many times)."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(f"gridlstm: {message}", RuntimeWarning, stacklevel=4)


def switched_off() -> bool:
    """Whether the environment variable turns the native steps off. A value that is neither
    on nor off leaves them on, with one warning naming the choices."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value not in OFF + ON:
        warn_once(
            f"{ENV_SWITCH}={value!r} is not one of {', '.join(OFF + ON[1:])}; "
            "the native CPU steps stay on"
        )
    return value in OFF


ISAS = ("AVX512", "AVX2", "DEFAULT")  # the builds, widest first
ISA_FLAGS = {  # ATen's own flags and defines for each of its CPU_CAPABILITY builds
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c"],
    "DEFAULT": [],
}


def cpu_capability() -> str:
    """The widest build this CPU runs, from torch's own probe (which ``ATEN_CPU_CAPABILITY``
    lowers): AVX-512 where ATen would use it, AVX2, else the portable build."""
    found = torch.backends.cpu.get_cpu_capability()
    return found if found in ("AVX512", "AVX2") else "DEFAULT"


def requested() -> str | None:
    """The build ``GRIDLSTM_NATIVE_ISA`` asks for (None: unset or ``auto``, the widest the
    CPU runs). Forcing a narrower one compares the builds on one machine; a value that names
    no build leaves the choice automatic, with one warning naming the choices."""
    value = os.environ.get(ENV_ISA, "").strip()
    if value.lower() in ("", "auto"):
        return None
    if value.upper() in ISAS:
        return value.upper()
    choices = ", ".join(isa.lower() for isa in ISAS)
    warn_once(f"{ENV_ISA}={value!r} is not one of auto, {choices}; the widest build the CPU runs")
    return None


@functools.cache
def compiler_accepts(compiler: str, target: str) -> bool:
    """Whether ``compiler`` compiles with a build's instruction-set flags (an old compiler
    may not know AVX-512's). A compiler that is not there counts as accepting: `missing_tool`
    names that problem."""
    if not ISA_FLAGS[target] or shutil.which(compiler) is None:
        return True
    command = [compiler, *ISA_FLAGS[target], "-x", "c++", "-c", "-o", os.devnull, "-"]
    try:
        done = subprocess.run(
            command, input=b"int main() { return 0; }\n", capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def capability() -> str:
    """The build to load: the widest the CPU runs (`cpu_capability`), or the narrower one
    ``GRIDLSTM_NATIVE_ISA`` forces, stepping down where the compiler lacks its flags. A forced
    build the CPU cannot run is never built (its code would stop the process with an illegal
    instruction): one warning names the build taken instead."""
    have, wanted = cpu_capability(), requested()
    target = have
    if wanted is not None and ISAS.index(wanted) < ISAS.index(have):
        warn_once(
            f"{ENV_ISA}={wanted.lower()}: this CPU runs at most {have}; the native CPU steps "
            f"use the {have} build"
        )
    elif wanted is not None:
        target = wanted
    compiler = os.environ.get("CXX", "c++")
    while not compiler_accepts(compiler, target):
        narrower = ISAS[ISAS.index(target) + 1]
        warn_once(
            f"the C++ compiler ({compiler!r}) does not accept the {target} flags "
            f"({' '.join(ISA_FLAGS[target])}); the native CPU steps use the {narrower} build"
        )
        target = narrower
    return target


def flags(target: str) -> list[str]:
    """Compiler flags for a `capability`. Explicit instruction sets rather than
    ``-march=native``: a cache shared by nodes with different CPUs keys on them."""
    defines = [f"-DCPU_CAPABILITY={target}"]
    defines += [f"-DCPU_CAPABILITY_{target}"] if target != "DEFAULT" else []
    return ["-O3", "-DNDEBUG", *ISA_FLAGS[target], *defines]


@functools.cache
def compiler_identity(command: str) -> str:
    """The compiler as the build will run it: the command as written (torch writes it into
    the build file, so ``c++`` and ``g++`` are two build commands even where they are one
    program), the program it resolves to on PATH, and its version line."""
    found = shutil.which(command)
    resolved = str(Path(found).resolve()) if found else "not found"
    try:
        version = subprocess.run(
            [found or command, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError):
        version = []
    return "\n".join([command, resolved, *version])


def cache_dir(target: str) -> Path:
    """One directory per build command: torch version and install, interpreter, capability,
    source text and path, and the compilers the build reads from the environment (``CXX``,
    ``CC``). Two environments that differ in any of these would otherwise share one directory
    and each rebuild the other's library, on every first use, for as long as both are used."""
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gridlstm", "native"
    )
    where = "\n".join(
        [
            str(Path(torch.__file__).resolve().parent),
            sys.executable,
            sys.version,
            str(SOURCE.resolve()),
            compiler_identity(os.environ.get("CXX", "c++")),
            f"CC={os.environ.get('CC', '')}",
        ]
    )
    digest = hashlib.sha256(
        SOURCE.read_bytes() + " ".join(flags(target)).encode() + where.encode()
    ).hexdigest()
    tag = f"torch{torch.__version__}-{target}-{digest[:12]}".replace("+", "_")
    return Path(root) / tag


def cpp_extension():
    """`torch.utils.cpp_extension`, imported without its log line about a missing CUDA
    runtime (irrelevant to a CPU build)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension as module
    finally:
        logger.setLevel(level)
    return module


def missing_tool() -> str | None:
    """What a build needs and this machine lacks, named for the one-line message."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} is not on PATH; install g++ or set CXX)"
    is_ninja_available = cpp_extension().is_ninja_available
    if not is_ninja_available():
        # The ninja wheel (a dependency) puts its binary in the environment's bin folder,
        # which is not on PATH when the environment's python runs unactivated.
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except (ImportError, AttributeError):
            pass
    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def library_stamp(directory: Path) -> int | None:
    """The built library's modification time (None: not built there yet)."""
    try:
        return (directory / "gridlstm_native.so").stat().st_mtime_ns
    except OSError:
        return None


def load() -> bool:
    """Build (once per machine) and load the library; True if its ops are available. On
    failure one warning names the reason, once per process, and False is returned."""
    if "loaded" in _STATE:
        return bool(_STATE["loaded"])
    reason = missing_tool()
    if reason is None:
        target = capability()
        directory = cache_dir(target)
        try:
            from filelock import FileLock

            directory.mkdir(parents=True, exist_ok=True)
            before = library_stamp(directory)
            start = time.perf_counter()
            with FileLock(str(directory / "build.lock"), timeout=LOCK_TIMEOUT):
                # torch's own build lock, left behind by a build that was killed: torch
                # releases before 2.7 wait for it forever. Safe to remove here, since the
                # outer lock keeps every other process of ours out of this directory.
                (directory / "lock").unlink(missing_ok=True)
                path = cpp_extension().load(
                    name="gridlstm_native",
                    sources=[str(SOURCE)],
                    extra_cflags=flags(target),
                    build_directory=str(directory),
                    is_python_module=False,
                    verbose=False,
                )
            # Built (or rebuilt: ninja compiles again when its command changed), or found.
            _STATE["built"] = before is None or library_stamp(directory) != before
            _STATE.update(seconds=time.perf_counter() - start, path=str(path), isa=target)
        except Exception as error:
            last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            reason = f"its build failed in {directory} ({last[:200]})"
    _STATE["loaded"] = reason is None
    if reason is not None:
        _STATE["reason"] = reason
        warnings.warn(
            f"gridlstm: the native CPU steps are not available: {reason}; the PyTorch steps "
            f"run instead (same results, slower). {ENV_SWITCH}=0 turns them off.",
            RuntimeWarning,
            stacklevel=3,
        )
    return reason is None


def build_info() -> dict[str, object]:
    """What `load` did: loaded, built (or found in the cache), seconds, path and the build's
    instruction set (isa), or the reason."""
    return dict(_STATE)

"""Compile and load the native CPU steps (``gridlstm_native.cpp``) on first use.

Built with `torch.utils.cpp_extension.load` into a cache directory, not at install time:
``pip install -e ".[dev]"`` then needs nothing but a C++ compiler at run time, a failed or
impossible build costs only speed (the PyTorch steps run), and the library always matches
the torch it runs against (the cache key holds torch's version, the CPU's vector
instruction set and the source's hash). A file lock makes parallel sweep jobs build once and
the others wait for it. The library registers its ops under ``torch.ops.gridlstm``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gridlstm_native.cpp")
ENV_SWITCH = "GRIDLSTM_NATIVE"  # 0 / false / off: never build or use the native steps
ENV_CACHE = "GRIDLSTM_NATIVE_CACHE"  # where builds go (default ~/.cache/gridlstm/native)
LOCK_TIMEOUT = 900.0  # seconds to wait for another process's build

_STATE: dict[str, object] = {}  # "loaded": bool, "reason": str, "seconds": float, "path": str


OFF = ("0", "false", "off", "no")
ON = ("", "1", "true", "on", "yes")
_WARNED_SWITCH: set[str] = set()


def switched_off() -> bool:
    """Whether the environment variable turns the native steps off. A value that is neither
    on nor off leaves them on, with one warning naming the choices."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value not in OFF + ON and value not in _WARNED_SWITCH:
        _WARNED_SWITCH.add(value)
        warnings.warn(
            f"gridlstm: {ENV_SWITCH}={value!r} is not one of {', '.join(OFF + ON[1:])}; "
            "the native CPU steps stay on",
            RuntimeWarning,
            stacklevel=3,
        )
    return value in OFF


def capability() -> str:
    """The vector instruction set the build targets: AVX2 where the CPU has it (AVX-512 CPUs
    too), else the portable build (ATen's generic vectors, compiled without -m flags)."""
    found = torch.backends.cpu.get_cpu_capability()
    return "AVX2" if found in ("AVX2", "AVX512") else "DEFAULT"


def flags(target: str) -> list[str]:
    """Compiler flags for a `capability`. Explicit instruction sets rather than
    ``-march=native``: a cache shared by nodes with different CPUs keys on them."""
    common = ["-O3", "-DNDEBUG"]
    if target == "AVX2":
        return common + [
            "-mavx2",
            "-mfma",
            "-mf16c",
            "-DCPU_CAPABILITY=AVX2",
            "-DCPU_CAPABILITY_AVX2",
        ]
    return common + ["-DCPU_CAPABILITY=DEFAULT"]


def cache_dir(target: str) -> Path:
    """One directory per (torch version and install, interpreter, capability, source text
    and path): two environments with the same torch release would otherwise share one
    directory, and each would rebuild the other's library (its build files name the
    headers' and the interpreter's paths)."""
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gridlstm", "native"
    )
    where = "\n".join(
        [
            str(Path(torch.__file__).resolve().parent),
            sys.executable,
            sys.version,
            str(SOURCE.resolve()),
        ]
    )
    digest = hashlib.sha256(
        SOURCE.read_bytes() + " ".join(flags(target)).encode() + where.encode()
    ).hexdigest()
    tag = f"torch{torch.__version__}-{target}-{digest[:12]}".replace("+", "_")
    return Path(root) / tag


def cpp_extension():  # noqa: ANN201 - the module
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
            _STATE["built"] = not (directory / "gridlstm_native.so").exists()
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
            _STATE.update(seconds=time.perf_counter() - start, path=str(path))
        except Exception as error:  # noqa: BLE001 - any build failure means: fall back
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
    """What `load` did: loaded, built (or found in the cache), seconds, path or reason."""
    return dict(_STATE)

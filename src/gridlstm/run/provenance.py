"""What made a run: its code (commit, uncommitted changes, snapshot), the versions of Python
and the packages it ran on, the machine (CPU model, GPU, threads), the step paths its grids
took and the command line. One ``provenance`` entry in the run's ``metrics.json``, never
printed nor sent to a logger as metrics.

Why: a number in a study is only checkable if its record says which code made it; the same
seed on another commit, another torch or another CPU may train differently, and a re-run
(`gridlstm.rerun`) reports where the machine or versions differ from the record's. An
uncommitted change is kept whole beside the record (``provenance.diff``) with its hash in the
record, as W&B keeps a run's diff.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gridlstm.run import code
from gridlstm.run.code import PACKAGE_DIR

DIFF = "provenance.diff"
PACKAGES = ("torch", "lightning", "numpy", "gridlstm")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    import torch

    found["torch"] = torch.__version__  # the imported one (a wheel's +cpu / +cu suffix)
    return found


def cpu_model() -> str:
    """The CPU's model name as the OS gives it (``/proc/cpuinfo``), else the platform's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        import subprocess

        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_kind() -> str:
    """Vendor, family and model numbers and whether the CPU has AVX-512 (``/proc/cpuinfo``):
    a VM may name every CPU "AMD EPYC", and two of them round matrix products differently
    (AVX2 or AVX-512 kernels), which a re-run's first differing step shows."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if not key.strip() and fields:
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
    if "cpu family" not in fields:
        return platform.machine() or "unknown"
    wide = "avx512f" in fields.get("flags", "").split()
    return (
        f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model "
        f"{fields.get('model', '?')}, {'with' if wide else 'without'} AVX-512"
    )


def device_name() -> str:
    """Where jobs run, in a line: the first GPU's name, else the CPU and its cores."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def results_tag(launcher: str) -> str:
    """The results folder's name for where the jobs run: this machine's kind (``gpu`` where
    it has a CUDA device, else ``cpu``), or the cluster launcher's name (the jobs run on its
    nodes, not here). Why: a CPU run's records under ``gpu/`` misstate their machine."""
    if launcher != "local":
        return re.sub(r"[^A-Za-z0-9_.-]", "_", launcher)
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def machine(uses_cuda: bool) -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_kind": cpu_kind(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "os": platform.platform(),
    }
    if uses_cuda and torch.cuda.is_available():
        index = torch.cuda.current_device()
        found["gpu"] = torch.cuda.get_device_name(index)
        found["gpu_count"] = torch.cuda.device_count()
        found["cuda"] = torch.version.cuda
        found["driver"] = gpu_driver()
    return found


def gpu_driver() -> str | None:
    """The NVIDIA driver's version (nvidia-smi), None where it cannot be read."""
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.split()
        return out[0] if out else None
    return None


def shown(path: str | Path) -> str:
    """``path`` relative to the working directory where it lies below it: a record (a path in
    it, an interrupted run's reason) is committed beside a page and must hold on every clone."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def code_entry(output_dir: Path | None, running: code.Code | None = None) -> dict[str, Any]:
    """The commit, the dirty flag and, when dirty, the diff's hash (the diff itself is written
    to ``output_dir/provenance.diff``). ``running``: read when the run started (a commit made
    while it trains is not the code it imported)."""
    running = running or code.current()
    entry: dict[str, Any] = {"commit": running.commit, "dirty": running.dirty}
    if running.dirty:
        entry["diff_sha256"] = code.digest(running.diff)
        if output_dir is not None:
            from gridlstm.data.files import write_atomic

            write_atomic(output_dir / DIFF, running.diff)
            entry["diff"] = DIFF
    if running.snapshot:
        entry["snapshot"] = shown(running.snapshot)
    return entry


def steps_entry(choices: list[tuple[str, str, str | None]]) -> list[str]:
    """The step paths that ran, one line each, deduplicated in order: "choice: implementation"."""
    seen: dict[str, None] = {}
    for choice, implementation, reason in choices:
        if reason is None:
            seen.setdefault(f"{choice}: {implementation}", None)
    return list(seen)


def collect(
    output_dir: Path | None = None,
    *,
    uses_cuda: bool = False,
    steps: list[tuple[str, str, str | None]] | None = None,
    running: code.Code | None = None,
) -> dict[str, Any]:
    """The run's ``provenance`` entry (writes the diff beside the record where dirty)."""
    return {
        "code": code_entry(output_dir, running),
        "versions": versions(),
        "machine": machine(uses_cuda),
        "step_paths": steps_entry(steps or []),
        "imported_from": shown(PACKAGE_DIR),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
    }


def differences(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """Where ``here``'s versions and machine differ from ``recorded``'s: "torch 2.6.0 -> 2.7.1"
    lines (a re-run's report). Keys one of them lacks are left out (older records)."""
    lines = []
    for part in ("versions", "machine"):
        old, new = recorded.get(part) or {}, here.get(part) or {}
        lines += [f"{k} {old[k]} -> {new[k]}" for k in old if k in new and old[k] != new[k]]
    return lines

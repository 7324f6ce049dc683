"""Which native build loads (`gridlstm.nn.kernels.native.build.capability`): the widest the CPU
runs, a narrower one forced with ``GRIDLSTM_NATIVE_ISA``, a step down where the compiler lacks
the flags, with the CPU probe and the compiler check patched both ways, so these run alike on
an AVX-512, an AVX2 or a portable-only CPU. A build the CPU cannot run is never chosen: its
code would stop the process with an illegal instruction."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from gridlstm.nn.kernels.native import build

PROBES = [("AVX512", "AVX512"), ("AVX2", "AVX2"), ("DEFAULT", "DEFAULT"), ("NO AVX", "DEFAULT")]


@pytest.fixture
def cpu(monkeypatch):
    """Set what torch's probe reports; the compiler accepts every build unless told."""
    monkeypatch.delenv(build.ENV_ISA, raising=False)
    monkeypatch.setattr(build, "_WARNED", set())
    monkeypatch.setattr(build, "compiler_accepts", lambda compiler, target: True)

    def has(found: str) -> None:
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: found)

    return has


def chosen(monkeypatch, forced: str | None = None) -> tuple[str, list[str]]:
    if forced is not None:
        monkeypatch.setenv(build.ENV_ISA, forced)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = build.capability()
        assert build.capability() == target  # warned once only
    return target, [str(w.message) for w in caught]


@pytest.mark.parametrize(("found", "target"), PROBES)
def test_the_build_targets_what_the_cpu_has(cpu, monkeypatch, found, target):
    """AVX-512 flags where torch's probe says AVX512, AVX2 flags where AVX2, else the
    portable build; each in its own cache directory, so that nodes with different CPUs
    sharing a cache never mix them."""
    cpu(found)
    assert chosen(monkeypatch) == (target, [])
    flags = build.flags(target)
    assert ("-mavx512f" in flags) == (target == "AVX512")
    assert ("-mavx2" in flags) == (target == "AVX2")
    assert f"-DCPU_CAPABILITY={target}" in flags
    assert len({build.cache_dir(isa) for isa in build.ISAS}) == 3


@pytest.mark.parametrize("have", build.ISAS)
@pytest.mark.parametrize("forced", ["avx512", "AVX2", "default", "auto", ""])
def test_a_forced_build_is_taken_only_where_the_cpu_runs_it(cpu, monkeypatch, have, forced):
    cpu(have)
    target, messages = chosen(monkeypatch, forced)
    wanted = forced.upper() if forced.upper() in build.ISAS else have
    if build.ISAS.index(wanted) < build.ISAS.index(have):  # wider than this CPU: refused
        assert target == have
        assert messages == [
            f"gridlstm: GRIDLSTM_NATIVE_ISA={forced.lower()}: this CPU runs at most {have}; "
            f"the native CPU steps use the {have} build"
        ]
    else:
        assert (target, messages) == (wanted, [])


def test_an_unknown_forced_build_names_the_choices(cpu, monkeypatch):
    cpu("AVX2")
    target, messages = chosen(monkeypatch, "sse4")
    assert target == "AVX2"
    assert messages == [
        "gridlstm: GRIDLSTM_NATIVE_ISA='sse4' is not one of auto, avx512, avx2, default; "
        "the widest build the CPU runs"
    ]


@pytest.mark.parametrize(
    ("refused", "target"), [({"AVX512"}, "AVX2"), ({"AVX512", "AVX2"}, "DEFAULT")]
)
def test_a_compiler_without_the_flags_steps_down(cpu, monkeypatch, refused, target):
    cpu("AVX512")
    monkeypatch.setattr(build, "compiler_accepts", lambda compiler, isa: isa not in refused)
    found, messages = chosen(monkeypatch)
    assert found == target
    assert len(messages) == len(refused)
    assert "does not accept the AVX512 flags (-mavx512f" in messages[0]
    assert messages[-1].endswith(f"the native CPU steps use the {target} build")


def fake_compiler(tmp_path: Path, refuses: str) -> str:
    """A compiler that refuses any command line holding ``refuses`` (an old one)."""
    path = tmp_path / "old-c++"
    path.write_text(f'#!/bin/sh\ncase "$*" in *{refuses}*) exit 1;; esac\nexit 0\n')
    path.chmod(0o755)
    return str(path)


def test_the_compiler_check_runs_the_compiler(tmp_path):
    build.compiler_accepts.cache_clear()
    old = fake_compiler(tmp_path, "-mavx512")
    assert not build.compiler_accepts(old, "AVX512")
    assert build.compiler_accepts(old, "AVX2")
    assert build.compiler_accepts(old, "DEFAULT")  # no flags: nothing to check
    assert build.compiler_accepts(str(tmp_path / "absent"), "AVX512")  # missing_tool says it


BUILD_ONLY = """
import sys
import torch
import torch.utils.cpp_extension as cpp_extension
from gridlstm.nn.kernels.native import build
torch.ops.load_library = lambda path: None  # built, never loaded: this CPU may lack the ISA
cpp_extension.load(
    name="gridlstm_native", sources=[str(build.SOURCE)], extra_cflags=build.flags(sys.argv[1]),
    build_directory=sys.argv[2], is_python_module=False, verbose=False,
)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64")
def test_the_avx512_build_compiles_on_any_x86_cpu(tmp_path):
    """The AVX-512 build's source compiles with ATen's 512-bit vectors on any x86-64 machine
    whose compiler has the flags (it runs only where the CPU has them; there the
    equivalence tests run on it). About 30 s."""
    if not build.compiler_accepts(os.environ.get("CXX", "c++"), "AVX512"):
        pytest.skip("this compiler has no AVX-512 flags (capability() steps down there)")
    command = [sys.executable, "-c", BUILD_ONLY, "AVX512", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "-mavx512f" in (tmp_path / "build.ninja").read_text()
    assert (tmp_path / "gridlstm_native.so").stat().st_size > 0

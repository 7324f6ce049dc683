"""The package's layout as docs/contributing.md states it: imports run one way (nn -> data ->
tasks -> run -> benchmarks -> analysis -> commands), and inside `gridlstm.nn` from the kernels
up (docs/backends.md section 8); no import cycles, counting function-local and TYPE_CHECKING
imports; the pure-PyTorch layer free of Lightning and Hydra, the package root only packages
and entry points, and long files say why."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "gridlstm"
# Lower layers first; a module may import its own layer and those before it.
LAYERS = ["nn", "data", "tasks", "run", "benchmarks", "analysis"]


def declared_commands() -> set[str]:
    """The commands pyproject.toml installs (``gridlstm-X = "gridlstm.X:main"``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata is pyproject's
        from importlib.metadata import entry_points

        scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    else:
        with (SRC.parent / "pyproject.toml").open("rb") as file:
            scripts = tomllib.load(file)["project"]["scripts"]
    return {
        name.removeprefix("gridlstm-")
        for name, target in scripts.items()
        if target.startswith("gridlstm.")
    }


COMMANDS = declared_commands()
LONG = 400  # lines; a longer module states why in its docstring ("Longer than 400 lines")
# Inside gridlstm.nn, lowest first: a module may import its own part and those before it.
# The kernels import nothing above them (no block, backend or network); the backends reach
# the network only through `gridlstm.nn.backends.base`.
NN_PARTS = [
    (
        "base",
        (
            "gridlstm.nn.dispatch",
            "gridlstm.nn.checks",
            "gridlstm.nn.precision",
            "gridlstm.nn.options_state",
        ),
    ),
    ("kernels", ("gridlstm.nn.kernels",)),
    ("block", ("gridlstm.nn.block",)),
    ("backends", ("gridlstm.nn.backends",)),
    (
        "network",
        (
            "gridlstm.nn.calling",
            "gridlstm.nn.grid",
            "gridlstm.nn.grid2d",
            "gridlstm.nn.graphs",
            "gridlstm.nn.probe",
        ),
    ),
    ("models", ("gridlstm.nn.models", "gridlstm.nn.sizing")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(
    path: Path, known: set[str], top_level_only: bool, type_checking: bool = False
) -> set[str]:
    """The package's modules ``path`` imports (run-time imports, and with ``type_checking``
    those for type checkers too; with ``top_level_only`` only those executed when the module
    is imported)."""
    found: set[str] = set()

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child) and not type_checking:
                continue
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [f"{child.module}.{a.name}" for a in child.names]
                if not set(names) <= known:  # names defined by the module, not submodules
                    names.append(child.module)
            else:
                names = []
            if not (top_level_only and nested):
                for name in names:
                    # The deepest module the name reaches (from pkg import submodule).
                    while name and name not in known:
                        name = name.rpartition(".")[0]
                    if name:
                        found.add(name)
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package itself: version and the moved-module table
    if parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    assert parts[1] in COMMANDS, f"{module}: the package root holds only layers and commands"
    return len(LAYERS)


def test_imports_run_one_way():
    known = set(modules())
    upward = []
    for name, path in modules().items():
        for target in imports(path, known, top_level_only=False):
            if layer(target) > layer(name):
                upward.append(f"{name} imports {target}")
    assert not upward, upward


# Inside the evidence engine (gridlstm.analysis), lowest first; a module may import its own
# part and those before it (a module not listed is refused, so a new one gets a place).
EVIDENCE_PARTS = [
    # what a job left behind, read, tested and drawn; no study in sight
    ("records", ("job_records", "markdown", "survival", "counted_macs", "curve_figure",
                 "probe_figure", "studies.pins", "aggregate", "verdicts", "ties", "reruns")),
    # rules that choose a stage's cases from records, and a sweep's tables
    ("choose", ("stages", "frontier", "lr_check", "sweep_report", "reproduce",
                "studies.rules")),
    # a study's declaration, its stages, tables, reports and answers
    ("declare", ("declared", "evidence", "confirmatory", "record_tables", "reports",
                 "made_by", "answers", "wandb_log", "derived", "declaration",
                 "preregistration")),
    # the pages and their check; the queue that runs a declaration's jobs
    ("publish", ("pages", "studies.spec", "studies.executors", "studies.preflight",
                 "studies.records", "studies.runner", "studies")),
]  # fmt: skip


def evidence_part(module: str) -> int:
    """The part of `EVIDENCE_PARTS` a module of gridlstm.analysis is in."""
    inner = module.removeprefix("gridlstm.analysis").lstrip(".")
    for i, (_, names) in enumerate(EVIDENCE_PARTS):
        if any(inner == n or inner.startswith(f"{n}.") for n in names):
            return i
    raise AssertionError(f"{module}: not placed in EVIDENCE_PARTS (tests/test_layout.py)")


def test_inside_the_evidence_engine_imports_run_one_way():
    """No upward arrow inside gridlstm.analysis: records, then the rules that choose, then
    the declarations, then the pages and the queue."""
    known = set(modules())
    inside = {n: p for n, p in modules().items() if n.startswith("gridlstm.analysis.")}
    upward = [
        f"{name} imports {target}"
        for name, path in inside.items()
        for target in imports(path, known, top_level_only=False)
        if target.startswith("gridlstm.analysis.") and evidence_part(target) > evidence_part(name)
    ]
    assert not upward, upward


def nn_part(module: str) -> int:
    """A module's place in `NN_PARTS` (the package ``gridlstm.nn`` itself: above them all)."""
    for number, (_, prefixes) in enumerate(NN_PARTS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    assert module == "gridlstm.nn", f"{module}: add it to NN_PARTS"
    return len(NN_PARTS)


def test_inside_nn_imports_run_from_the_kernels_up():
    known = set(modules())
    upward = []
    for name, path in modules().items():
        if not name.startswith("gridlstm.nn"):
            continue
        for target in imports(path, known, top_level_only=False, type_checking=True):
            if target.startswith("gridlstm.nn") and nn_part(target) > nn_part(name):
                upward.append(f"{name} imports {target}")
    assert not upward, upward


IMPLEMENTATIONS = ("native", "fused", "handwritten")  # gridlstm.nn.dispatch.IMPLEMENTATIONS


def test_only_the_kernel_entrance_imports_the_step_implementations():
    """Outside kernels/, a backend asks `gridlstm.nn.kernels.ops` which implementation runs
    and ops runs it: no module imports kernels.native, kernels.fused or kernels.handwritten
    itself (function-local imports counted; a native build's info for the bench excepted)."""
    known = set(modules())
    kernels = tuple(f"gridlstm.nn.kernels.{name}" for name in IMPLEMENTATIONS)
    allowed = {"gridlstm.nn.kernels.native.build"}  # no step: the build's facts, for reports
    found = []
    for name, path in modules().items():
        if name.startswith("gridlstm.nn.kernels") or name.startswith("gridlstm.nn.dispatch"):
            continue
        for target in imports(path, known, top_level_only=False):
            if target.startswith(kernels) and target not in allowed:
                found.append(f"{name} imports {target}")
    assert not found, found


def test_no_script_imports_the_tests():
    """Tools a user runs stand on the package alone (the tests are not installed)."""
    found = [
        f"{path.name}: {line.strip()}"
        for path in sorted((SRC.parent / "scripts").glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(from|import) tests\b", line)
    ]
    assert not found, found


def test_no_import_cycles():
    """Counting every import: function-local ones and those for type checkers too."""
    known = set(modules())
    graph = {
        name: imports(path, known, top_level_only=False, type_checking=True) - {name}
        for name, path in modules().items()
    }
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            walk(name, [name])
    assert not cycles, cycles


def test_the_library_layer_needs_no_lightning_or_hydra():
    """`gridlstm.nn` imported alone loads neither Lightning nor Hydra nor OmegaConf."""
    code = (
        "import sys, gridlstm.nn, gridlstm.nn.backends.hyperplane; "
        "print(sorted(m for m in ('lightning', 'hydra', 'omegaconf') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_package_root_holds_only_packages_and_commands():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == COMMANDS
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == {*LAYERS}


def test_long_modules_say_why():
    unexplained = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > LONG and "Longer than 400 lines" not in doc:
            unexplained.append(f"{name}: {lines} lines")
    assert not unexplained, unexplained


def test_the_architecture_page_names_every_module_and_script():
    """docs/contributing.md's tree is where a new contributor finds a module: each module, package
    and script is named there (a name in the tree's text, with what it is for)."""
    root = SRC.parent
    text = (root / "docs" / "contributing.md").read_text()
    tree = text.split("```\nconf/", 1)[1].split("```", 1)[0]
    words = set(re.findall(r"\w+", tree))
    package = SRC / "gridlstm"
    names = [p for p in package.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    names += [p for p in package.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    missing = sorted(str(p.relative_to(package)) for p in names if p.stem not in words)
    missing += sorted(p.name for p in (root / "scripts").iterdir() if p.name not in tree)
    assert missing == []


def test_config_error_is_imported_from_where_it_is_defined():
    """gridlstm.run.errors defines ConfigError; importing it through gridlstm.run.config
    (which re-exports it) hides where it lives."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            through_config = (
                isinstance(node, ast.ImportFrom) and node.module == "gridlstm.run.config"
            )
            if through_config and any(alias.name == "ConfigError" for alias in node.names):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore says "this module's own": a name another module needs is public
    (`_kind` imported across modules would hide that two modules share it)."""
    found = [
        f"{path.relative_to(SRC)}:{node.lineno}: {alias.name}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gridlstm")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert found == []


def test_module_paths_from_before_0_2_are_gone():
    """The 0.2 compatibility finder is retired: an old path is an ordinary import error."""
    for old in ("gridlstm.callbacks", "gridlstm.nn.wavefront", "gridlstm.aggregate"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


README = SRC.parent / "README.md"


def test_the_readmes_first_screen_is_the_quickstart_with_its_expected_output():
    """A newcomer reaches install, `python train.py` with what it prints, and the tests
    within the first 40 lines."""
    first = README.read_text(encoding="utf-8").splitlines()[:40]
    text = "\n".join(first)
    for needed in ('pip install -e ".[dev]"', "python train.py", "test/acc", "python -m pytest"):
        assert needed in text, needed


def test_the_citation_file_names_the_packages_version_and_the_paper():
    """CITATION.cff (the Citation File Format GitHub reads) is valid YAML with the
    package's version and the paper as the preferred citation; the README links it."""
    pyproject = (SRC.parent / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)  # 3.10: no tomllib
    cff = yaml.safe_load((SRC.parent / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == version
    paper = cff["preferred-citation"]
    assert paper["title"] == "Grid Long Short-Term Memory" and paper["year"] == 2016
    assert "](CITATION.cff)" in README.read_text(encoding="utf-8")


def test_the_readme_is_short_and_its_library_example_runs():
    text = README.read_text(encoding="utf-8")
    assert text.count("\n") <= 160
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "README.md", "exec"), {})


def test_every_command_is_installed_as_a_console_script_and_has_the_same_shape():
    """pyproject's list is the installed one; each command is ``parse`` then ``run`` (which
    calls one function of a layer) and ``main`` (``--help``, one-line errors), except
    ``train``, which is Hydra's app."""
    from importlib.metadata import entry_points

    scripts = {
        ep.name: ep
        for ep in entry_points(group="console_scripts")
        if ep.name.startswith("gridlstm-")
    }
    assert set(scripts) == {f"gridlstm-{command}" for command in COMMANDS}
    for name, ep in scripts.items():
        assert ep.value == f"gridlstm.{name.removeprefix('gridlstm-')}:main"
        assert callable(ep.load())
    assert "train" in COMMANDS and len(COMMANDS) >= 7
    for command in COMMANDS - {"train"}:
        module = importlib.import_module(f"gridlstm.{command}")
        assert all(callable(getattr(module, f, None)) for f in ("parse", "run", "main")), command


def test_nothing_is_left_to_remove_in_0_4():
    """0.4 dropped the 0.1/0.2 shims (old class paths, the 0.2 translation budget, renamed
    options): no module still promises a removal, and the old class name is gone."""
    import gridlstm.nn
    from gridlstm.run import checkpoints

    assert not hasattr(gridlstm.nn, "Grid3dLSTM")
    assert "gridlstm.nn.Grid3dLSTM" not in checkpoints.suite_classes()["net"]
    promised = [p.name for p in SRC.rglob("*.py") if "Remove in 0.4" in p.read_text()]
    assert promised == []


CONF = SRC.parent / "conf"


def config_targets(group: str, key: str) -> dict[str, str]:
    """{config option: the ``_target_`` at ``key``} of every file of a config group."""
    from omegaconf import OmegaConf

    found = {}
    for path in sorted((CONF / group).glob("*.yaml")):
        node = OmegaConf.select(OmegaConf.load(path), key)
        if node is not None:
            found[path.stem] = str(node)
    return found


@pytest.mark.parametrize(
    ("group", "key", "kind"),
    [
        ("task", "datamodule._target_", "datamodule"),
        ("task", "module._target_", "module"),
        ("model", "net._target_", "net"),
    ],
)
def test_every_class_a_config_names_is_one_a_checkpoint_may_name(group, key, kind):
    """The export rule: a data module, task module or backbone must be in its package's
    ``__all__``, or the checkpoint loader (which admits only exported classes) refuses the
    checkpoints of its runs."""
    from gridlstm.run import checkpoints

    allowed = checkpoints.suite_classes()[kind]
    targets = config_targets(group, key)
    assert targets
    missing = {option: target for option, target in targets.items() if target not in allowed}
    assert not missing, f"export these in their package's __all__: {missing}"


def test_every_task_pairs_a_data_module_with_a_task_module_that_takes_its_contract():
    """``module_kwargs()`` returns one `gridlstm.data.contracts` dictionary; the task module
    names the same one (``DATA``) and takes each of its keys as an argument."""
    import inspect
    import typing

    from hydra.utils import get_class

    data, modules = (
        config_targets("task", "datamodule._target_"),
        config_targets("task", "module._target_"),
    )
    assert set(data) == set(modules)
    for task, target in data.items():
        contract = typing.get_type_hints(get_class(target).module_kwargs)["return"]
        assert typing.is_typeddict(contract), f"task={task}: {target}.module_kwargs"
        module = get_class(modules[task])
        assert module.DATA is contract, f"task={task}: {modules[task]}.DATA"
        parameters = inspect.signature(module).parameters
        assert set(contract.__annotations__) <= set(parameters), f"task={task}"


def test_commands_never_import_each_other():
    """A command parses its arguments and calls a layer; what two commands share lives there."""
    known = set(modules())
    commands = {f"gridlstm.{c}" for c in COMMANDS}
    crossing = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if name in commands
        for target in imports(path, known, top_level_only=False, type_checking=True)
        if target in commands - {name}
    ]
    assert not crossing, crossing


# The package's shape for a review (python -m tests.test_layout): modules per package, import
# arrows inside gridlstm.nn and gridlstm.run, circles and upward arrows, with the reader the
# tests above enforce.
def report() -> None:
    found = modules()
    known = set(found)
    graph = {
        n: imports(p, known, top_level_only=False, type_checking=True) - {n}
        for n, p in found.items()
    }
    packages = Counter(".".join(n.split(".")[:2]) for n in found if n.count("."))
    print("modules per package:")
    for package, count in sorted(packages.items()):
        print(f"  {package}: {count}")
    for part in ("gridlstm.nn", "gridlstm.run"):
        arrows = sum(
            1 for n, ts in graph.items() if n.startswith(part) for t in ts if t.startswith(part)
        )
        print(f"import arrows inside {part}: {arrows}")
    upward = [f"{n} -> {t}" for n, ts in graph.items() for t in ts if layer(t) > layer(n)]
    print(f"upward arrows: {len(upward)}", *upward, sep="\n  ")
    cycles = set()

    def walk(node: str, stack: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in stack:
                ring = stack[stack.index(nxt) :]
                start = ring.index(min(ring))
                cycles.add(tuple(ring[start:] + ring[:start]))
            elif len(stack) < 8:
                walk(nxt, [*stack, nxt])

    for name in graph:
        walk(name, [name])
    print(f"circles: {len(cycles)}", *(" -> ".join(c) for c in sorted(cycles)), sep="\n  ")
    commands_importing = [
        f"{n} -> {t}" for n, ts in graph.items() for t in ts if layer(n) == layer(t) == len(LAYERS)
    ]
    print(
        f"commands importing commands: {len(commands_importing)}", *commands_importing, sep="\n  "
    )


if __name__ == "__main__":
    report()

"""Print the package's shape for a review: modules per package, import arrows inside
`gridlstm.nn` and `gridlstm.run` (function-local and type-checking imports counted), import
circles and upward arrows between layers. Uses the same import reader as tests/test_layout.py,
so the numbers are the ones the layout tests enforce."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_layout import imports, layer, modules


def main() -> None:
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
        f"{n} -> {t}" for n, ts in graph.items() for t in ts if layer(n) == layer(t) == 5
    ]
    print(
        f"commands importing commands: {len(commands_importing)}", *commands_importing, sep="\n  "
    )


if __name__ == "__main__":
    main()

"""Hyperplane (anti-diagonal) scheduler for N-D grids (spec section 2, "General scheduler").

Cell (p, l) (grid position p, layer l) depends only on (p - e_k, l) and (p, l - 1), so all
cells with sum(p) + l = s are independent, and all their inputs lie on hyperplane s - 1 or
on the grid's boundary. A grid therefore takes sum(sizes) + L - 1 sequential steps instead
of prod(sizes) * L.

Each step gathers its cells' incoming vectors with a few `index_select` calls on the
previous hyperplane's outputs and on static pools (boundary state, projected input, zeros),
using index tensors planned once per grid shape; then it runs one block call per layer on
the hyperplane (one call in all when the layers share a block). Nothing is written in place
into a tensor autograd needs: each step's outputs are new tensors.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Gather:
    """Where one incoming vector of every cell of a step comes from."""

    prev: Tensor | None  # rows of the previous hyperplane
    static: Tensor | None  # rows of the static pool
    order: Tensor | None  # permutation of cat([prev rows, static rows]) into step order


@dataclass
class Step:
    groups: list[tuple[int, int, int]]  # (layer of the block, first row, end row)
    gathers: dict[tuple[int, str], Gather]  # (dim, "h" | "m") -> Gather
    time: Tensor | None  # time index of each cell (one grid dimension), for length masks
    top: Tensor  # rows of top-layer cells
    top_at: list[int]  # their linear positions
    last: list[tuple[Tensor, list[int]]] = field(default_factory=list)  # per grid dim k


def _linear(p: tuple[int, ...], sizes: list[int]) -> int:
    index = 0
    for coordinate, size in zip(p, sizes, strict=True):
        index = index * size + coordinate
    return index


def plan(
    sizes: list[int], layers: int, tied: bool, input_dims: list[int], memory_input: bool
) -> list[Step]:
    """Index plan for a grid of ``sizes`` x ``layers``; see the module docstring."""
    K = len(sizes)
    positions = list(itertools.product(*(range(s) for s in sizes)))
    by_step: dict[int, list[tuple]] = {}
    for p in positions:
        for layer in range(layers):
            by_step.setdefault(sum(p) + layer, []).append((p, layer))
    rest_sizes = [sizes[:k] + sizes[k + 1 :] for k in range(K)]
    rest_count = [math.prod(r) for r in rest_sizes]

    def source(p: tuple[int, ...], layer: int, dim: int, part: str):
        """("prev", cell) or ("static", index into the (dim, part) pool)."""
        if layer == 0 and dim in input_dims and (part == "h" or memory_input):
            offset = 1 if dim == K else layers * rest_count[dim]
            return "static", offset + _linear(p, sizes)
        if dim == K:
            return ("prev", (p, layer - 1)) if layer > 0 else ("static", 0)
        if p[dim] > 0:
            return "prev", (p[:dim] + (p[dim] - 1,) + p[dim + 1 :], layer)
        rest = p[:dim] + p[dim + 1 :]
        return "static", layer * rest_count[dim] + _linear(rest, rest_sizes[dim])

    steps, row_of = [], {}
    for s in sorted(by_step):
        cells = sorted(by_step[s], key=lambda c: (0 if tied else c[1], c[0]))
        groups: list[tuple[int, int, int]] = []
        for row, (_, layer) in enumerate(cells):
            key = 0 if tied else layer
            if groups and groups[-1][0] == key:
                groups[-1] = (key, groups[-1][1], row + 1)
            else:
                groups.append((key, row, row + 1))
        gathers = {}
        for dim in range(K + 1):
            for part in ("h", "m"):
                prev, static, slots = [], [], []
                for p, layer in cells:
                    kind, where = source(p, layer, dim, part)
                    if kind == "prev":
                        slots.append(len(prev))
                        prev.append(row_of[where])
                    else:
                        slots.append(-1 - len(static))
                        static.append(where)
                order = [slot if slot >= 0 else len(prev) - 1 - slot for slot in slots]
                identity = order == list(range(len(order)))
                gathers[dim, part] = Gather(
                    torch.tensor(prev) if prev else None,
                    torch.tensor(static) if static else None,
                    None if identity else torch.tensor(order),
                )
        top = [row for row, (_, layer) in enumerate(cells) if layer == layers - 1]
        step = Step(
            groups=groups,
            gathers=gathers,
            time=torch.tensor([p[0] for p, _ in cells]) if K == 1 else None,
            top=torch.tensor(top, dtype=torch.long),
            top_at=[_linear(cells[row][0], sizes) for row in top],
        )
        for k in range(K):
            rows = [r for r, (p, _) in enumerate(cells) if p[k] == sizes[k] - 1]
            at = [
                cells[r][1] * rest_count[k]
                + _linear(cells[r][0][:k] + cells[r][0][k + 1 :], rest_sizes[k])
                for r in rows
            ]
            step.last.append((torch.tensor(rows, dtype=torch.long), at))
        steps.append(step)
        row_of = {cell: row for row, cell in enumerate(cells)}
    return steps


def _to_device(steps: list[Step], device: torch.device) -> list[Step]:
    def move(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    moved = []
    for step in steps:
        gathers = {
            k: Gather(move(g.prev), move(g.static), move(g.order)) for k, g in step.gathers.items()
        }
        moved.append(
            Step(
                step.groups,
                gathers,
                move(step.time),
                move(step.top),
                step.top_at,
                [(move(rows), at) for rows, at in step.last],
            )
        )
    return moved


def _rows_first(t: Tensor) -> Tensor:
    """(B, *index dims, d) -> (prod(index dims), B, d)."""
    return t.movedim(0, -2).reshape(-1, t.shape[0], t.shape[-1])


def run(
    blocks: nn.ModuleList,
    dropout: nn.Module,
    steps: list[Step],
    sizes: list[int],
    inputs: dict[int, tuple[Tensor, Tensor | None]],
    boundary: list[tuple[Tensor, Tensor]],
    output_dims: list[int],
    valid: Tensor | None,
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Execute a plan. Returns (top outputs (B, *sizes, d * len(output_dims)), final state
    per grid dimension (h, m) each (L, B, *sizes without k, d))."""
    K, L = len(sizes), len(blocks)
    some = next(iter(inputs.values()))[0]
    batch, d = some.shape[0], some.shape[-1]
    pools: dict[tuple[int, str], Tensor] = {}
    for dim in range(K + 1):
        for part, index in (("h", 0), ("m", 1)):
            first = (
                some.new_zeros(1, batch, d)
                if dim == K
                else _rows_first(boundary[dim][index].movedim(0, 1))
            )
            given = inputs.get(dim, (None, None))[index]
            pools[dim, part] = first if given is None else torch.cat([first, _rows_first(given)])

    prev: dict[tuple[int, str], Tensor] = {}
    tops: dict[int, list[Tensor]] = {dim: [] for dim in output_dims}
    top_at: list[int] = []
    lasts: list[dict[str, list[Tensor]]] = [{"h": [], "m": []} for _ in range(K)]
    last_at: list[list[int]] = [[] for _ in range(K)]
    for step in steps:
        if (K, "h") in prev:
            prev[K, "h"] = dropout(prev[K, "h"])  # depth h passed up between layers
        gathered: dict[tuple[int, str], Tensor] = {}
        for key, g in step.gathers.items():
            parts = []
            if g.prev is not None:
                parts.append(prev[key].index_select(0, g.prev))
            if g.static is not None:
                parts.append(pools[key].index_select(0, g.static))
            rows = torch.cat(parts) if len(parts) > 1 else parts[0]
            gathered[key] = rows if g.order is None else rows.index_select(0, g.order)
        out_h: list[list[Tensor]] = [[] for _ in range(K + 1)]
        out_m: list[list[Tensor]] = [[] for _ in range(K + 1)]
        for layer, a, b in step.groups:
            n = b - a
            h_in = [gathered[dim, "h"][a:b].reshape(n * batch, d) for dim in range(K + 1)]
            m_in = [gathered[dim, "m"][a:b].reshape(n * batch, d) for dim in range(K + 1)]
            h_new, m_new = blocks[layer](h_in, m_in)
            for dim in range(K + 1):
                out_h[dim].append(h_new[dim].reshape(n, batch, d))
                out_m[dim].append(m_new[dim].reshape(n, batch, d))
        for dim in range(K + 1):
            h_cat = torch.cat(out_h[dim]) if len(out_h[dim]) > 1 else out_h[dim][0]
            m_cat = torch.cat(out_m[dim]) if len(out_m[dim]) > 1 else out_m[dim][0]
            prev[dim, "h"], prev[dim, "m"] = h_cat, m_cat
        if valid is not None:
            # Padding steps pass the time state through unchanged.
            keep = valid.t().index_select(0, step.time).unsqueeze(-1)
            prev[0, "h"] = torch.where(keep, prev[0, "h"], gathered[0, "h"])
            prev[0, "m"] = torch.where(keep, prev[0, "m"], gathered[0, "m"])
        if len(step.top):
            for dim in output_dims:
                tops[dim].append(prev[dim, "h"].index_select(0, step.top))
            top_at.extend(step.top_at)
        for k, (rows, at) in enumerate(step.last):
            if len(rows):
                lasts[k]["h"].append(prev[k, "h"].index_select(0, rows))
                lasts[k]["m"].append(prev[k, "m"].index_select(0, rows))
                last_at[k].extend(at)

    device = some.device
    order = torch.argsort(torch.tensor(top_at, device=device))
    columns = [torch.cat(tops[dim]).index_select(0, order) for dim in output_dims]
    output = torch.cat(columns, dim=-1)  # (P, B, features)
    output = output.movedim(1, 0).reshape(batch, *sizes, -1)
    final = []
    for k in range(K):
        order = torch.argsort(torch.tensor(last_at[k], device=device))
        rest = sizes[:k] + sizes[k + 1 :]
        pair = tuple(
            torch.cat(lasts[k][part])
            .index_select(0, order)
            .reshape(L, *rest, batch, d)
            .movedim(-2, 1)
            for part in ("h", "m")
        )
        final.append(pair)
    return output, final

"""Hyperplane (anti-diagonal) plans for N-D grids (docs/backends.md section 2).

Cell (p, l) (grid position p, layer l) depends only on (p - e_k, l) and (p, l - 1), so all
cells with sum(p) + l = s are independent, and all their inputs lie on hyperplane s - 1 or
on the grid's boundary. A grid therefore takes sum(sizes) + L - 1 sequential steps instead
of prod(sizes) * L. A plan holds, per step, the index tensors that gather every cell's
incoming vectors (one `index_select` per part, h and m, for all dimensions at once) from the
previous hyperplane's outputs and the static pools (boundary state, projected input, zeros).
It is built once per grid shape; `gridlstm.nn.backends.hyperplane.scheduler` executes it.

`Layout` is a plan as the step implementations read it (`layout` builds it once per plan):
the handwritten PyTorch steps, the native loop and the fused Triton step share it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gridlstm.nn import dispatch


@dataclass(frozen=True)
class Group:
    """Dimensions a block computes from one H, as a slice when contiguous (cheap views)."""

    dims: tuple[int, ...]

    @property
    def index(self) -> slice | list[int]:
        first, last = self.dims[0], self.dims[-1]
        if list(self.dims) == list(range(first, last + 1)):
            return slice(first, last + 1)
        return list(self.dims)


@dataclass(frozen=True)
class Layout:
    """What the step implementations need of a `Plan` besides the tensors."""

    dims: int  # D: grid dimensions + depth
    groups: int  # row groups with their own weights (layers if per-layer, else 1)
    slots: tuple[int, ...]  # R per step
    starts: tuple[int, ...]  # first output row of each step, then the total
    static_rows: int
    index_h: tuple[Tensor, ...]  # per step: dimension-major picks of [all outputs; static]
    index_m: tuple[Tensor, ...]
    transforms: tuple[Group, ...]


@dataclass
class Gather:
    """Where one incoming vector of every cell of a step comes from, per dimension (the
    planning form; `combine` folds a step's Gathers into one gather per part)."""

    prev: Tensor | None  # rows of the previous hyperplane
    static: Tensor | None  # rows of the static pool
    order: Tensor | None  # permutation of cat([prev rows, static rows]) into step order


@dataclass
class Step:
    slots: int  # rows of the step (cells, plus padding when layers are batched)
    time: Tensor | None  # time index of each cell (one grid dimension), for length masks
    top: Tensor  # rows of top-layer cells
    top_at: list[int]  # their linear positions
    last: list[tuple[Tensor, list[int]]] = field(default_factory=list)  # per grid dim k
    # Per part ("h" | "m"): the gathers of every dimension as one (see `combine`).
    index: dict[str, Tensor] = field(default_factory=dict)
    static: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Plan:
    """A grid shape's steps, plus where the outputs sit among all steps' outputs laid back
    to back (step s as (D * slots_s) rows, dimension-major), as `handwritten` returns them."""

    steps: list[Step]
    top_rows: list[Tensor]  # per dimension: its top-layer h at every position, in order
    last_rows: list[Tensor]  # per grid dim k: the cells at its far end, in final-state order
    layout: Layout | None = None  # built on first use (`layout`)
    fused: Sources | None = None  # the fused step's gather rows, built on its first use


def combine(
    steps: list[Step],
    gathers: list[dict[tuple[int, str], Gather]],
    pool_sizes: dict[str, list[int]],
) -> None:
    """Fold each step's per-dimension ``gathers`` ((dim, part) -> Gather) into one gather
    per part.

    The step reads from ``cat([previous outputs, static rows])``: the previous hyperplane's
    outputs of dims 0..K stacked as (K + 1) x previous-slots rows, then the rows of the
    dimensions' static pools this step needs (``static``: indices into the pools of all
    dimensions concatenated, whose sizes are ``pool_sizes``). ``index`` picks the rows in
    dimension-major order: dimension k's incoming vectors are rows [k slots, (k + 1) slots).
    """
    previous = 0
    dims = len(pool_sizes["h"])
    for step, step_gathers in zip(steps, gathers, strict=True):
        for part, sizes in pool_sizes.items():
            offsets = [sum(sizes[:k]) for k in range(dims)]
            pieces, static, base = [], [], dims * previous
            for dim in range(dims):
                g = step_gathers[dim, part]
                rows = []
                if g.prev is not None:
                    rows.append(g.prev + dim * previous)
                if g.static is not None:
                    rows.append(torch.arange(base, base + len(g.static)))
                    static.append(g.static + offsets[dim])
                    base += len(g.static)
                index = torch.cat(rows)
                pieces.append(index if g.order is None else index[g.order])
            step.index[part] = torch.cat(pieces)
            step.static[part] = torch.cat(static) if static else torch.zeros(0, dtype=torch.long)
        previous = step.slots


def _linear(p: tuple[int, ...], sizes: list[int]) -> int:
    index = 0
    for coordinate, size in zip(p, sizes, strict=True):
        index = index * size + coordinate
    return index


def plan(
    sizes: list[int], layers: int, batched: bool, input_dims: list[int], memory_input: bool
) -> list[Step]:
    """Index plan for a grid of ``sizes`` x ``layers``; see the module docstring.

    ``batched``: lay each hyperplane out as ``layers`` equal runs of slots (for per-layer
    weights); otherwise one run of cells. Static pools have a zero row at index 0.
    """
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
            offset = 1 if dim == K else 1 + layers * rest_count[dim]
            return "static", offset + _linear(p, sizes)
        if dim == K:
            return ("prev", (p, layer - 1)) if layer > 0 else ("static", 0)
        if p[dim] > 0:
            return "prev", (p[:dim] + (p[dim] - 1,) + p[dim + 1 :], layer)
        rest = p[:dim] + p[dim + 1 :]
        return "static", 1 + layer * rest_count[dim] + _linear(rest, rest_sizes[dim])

    steps, all_gathers, row_of = [], [], {}
    for s in sorted(by_step):
        if batched:
            per_layer = [sorted(c for c in by_step[s] if c[1] == layer) for layer in range(layers)]
            width = max(len(cells) for cells in per_layer)
            slots: list[tuple | None] = []
            for cells in per_layer:
                slots += cells + [None] * (width - len(cells))
        else:
            slots = sorted(by_step[s])
        gathers = {}
        for dim in range(K + 1):
            for part in ("h", "m"):
                prev, static, order = [], [], []
                for cell in slots:
                    kind, where = ("static", 0) if cell is None else source(*cell, dim, part)
                    if kind == "prev":
                        order.append(("prev", len(prev)))
                        prev.append(row_of[where])
                    else:
                        order.append(("static", len(static)))
                        static.append(where)
                flat = [i if kind == "prev" else len(prev) + i for kind, i in order]
                gathers[dim, part] = Gather(
                    torch.tensor(prev) if prev else None,
                    torch.tensor(static) if static else None,
                    None if flat == list(range(len(flat))) else torch.tensor(flat),
                )
        top = [r for r, c in enumerate(slots) if c is not None and c[1] == layers - 1]
        all_gathers.append(gathers)
        step = Step(
            slots=len(slots),
            time=torch.tensor([0 if c is None else c[0][0] for c in slots]) if K == 1 else None,
            top=torch.tensor(top, dtype=torch.long),
            top_at=[_linear(slots[r][0], sizes) for r in top],
        )
        for k in range(K):
            rows = [r for r, c in enumerate(slots) if c is not None and c[0][k] == sizes[k] - 1]
            at = [
                slots[r][1] * rest_count[k]
                + _linear(slots[r][0][:k] + slots[r][0][k + 1 :], rest_sizes[k])
                for r in rows
            ]
            step.last.append((torch.tensor(rows, dtype=torch.long), at))
        steps.append(step)
        row_of = {cell: row for row, cell in enumerate(slots) if cell is not None}
    positions_count = len(positions)
    pool_sizes = {
        part: [
            1
            + (layers * rest_count[dim] if dim < K else 0)
            + (positions_count if dim in input_dims and (part == "h" or memory_input) else 0)
            for dim in range(K + 1)
        ]
        for part in ("h", "m")
    }
    combine(steps, all_gathers, pool_sizes)
    return Plan(steps, *_output_rows(steps, K))


def _output_rows(steps: list[Step], K: int) -> tuple[list[Tensor], list[Tensor]]:
    """`Plan.top_rows` and `Plan.last_rows`."""
    offset, tops, top_at = 0, [[] for _ in range(K + 1)], []
    lasts, last_at = [[] for _ in range(K)], [[] for _ in range(K)]
    for step in steps:
        for dim in range(K + 1):
            tops[dim].append(step.top + offset + dim * step.slots)
        top_at += step.top_at
        for k, (rows, at) in enumerate(step.last):
            lasts[k].append(rows + offset + k * step.slots)
            last_at[k] += at
        offset += (K + 1) * step.slots
    order = torch.argsort(torch.tensor(top_at))
    top_rows = [torch.cat(rows)[order] for rows in tops]
    last_rows = [
        torch.cat(rows)[torch.argsort(torch.tensor(at))]
        for rows, at in zip(lasts, last_at, strict=True)
    ]
    return top_rows, last_rows


def to_device(plan: Plan, device: torch.device) -> Plan:
    def move(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    moved = []
    for step in plan.steps:
        moved.append(
            Step(
                step.slots,
                move(step.time),
                move(step.top),
                step.top_at,
                [(move(rows), at) for rows, at in step.last],
                {part: t.to(device) for part, t in step.index.items()},
                {part: t.to(device) for part, t in step.static.items()},
            )
        )
    return Plan(moved, [move(t) for t in plan.top_rows], [move(t) for t in plan.last_rows])


def depth_mask(layout: Layout, s: int, noise: Tensor) -> Tensor:
    """Step ``s``'s dropout factors on its gathered depth h, (groups, r, B, d): ``noise``
    (R_{s-1}, B, d) at the rows gathered from step s - 1's depth outputs, 1 where the depth
    input is the network's input (layer 0, a static row)."""
    D, G, R = layout.dims, layout.groups, layout.slots[s]
    picks = layout.index_h[s][(D - 1) * R :]
    first = layout.starts[s - 1] + (D - 1) * layout.slots[s - 1]  # step s-1's depth h rows
    from_previous = picks < layout.starts[-1]
    rows = torch.where(from_previous, picks - first, 0)
    mask = torch.where(from_previous[:, None, None], noise.index_select(0, rows), 1.0)
    return mask.view(G, R // G, *noise.shape[1:])


def _build_layout(
    plan: Plan, layers: int, groups: list[tuple[int, ...]], checked: bool = True
) -> Layout:
    steps = plan.steps
    D = len(steps[0].index["h"]) // steps[0].slots
    starts = [0]
    for step in steps:
        starts.append(starts[-1] + D * step.slots)
    static_at = [starts[-1]]
    for step in steps:
        static_at.append(static_at[-1] + len(step.static["h"]))
    index: dict[str, list[Tensor]] = {"h": [], "m": []}
    for number, step in enumerate(steps):
        previous = D * steps[number - 1].slots if number else 0
        for part, picks in step.index.items():  # rows of [previous outputs; static rows]
            shift = torch.where(
                picks < previous, starts[max(number - 1, 0)], static_at[number] - previous
            )
            index[part].append(picks + shift)
    built = Layout(
        dims=D,
        groups=layers,
        slots=tuple(step.slots for step in steps),
        starts=tuple(starts),
        static_rows=static_at[-1] - starts[-1],
        index_h=tuple(index["h"]),
        index_m=tuple(index["m"]),
        transforms=tuple(Group(dims) for dims in groups),
    )
    return check_layout(built) if checked else built


def layout(plan: Plan, layers: int, groups: list[tuple[int, ...]]) -> Layout:
    """The plan as the steps read it, for ``layers`` row groups with their own weights (1
    when the layers share a block) and the transform groups' dimensions (built once per
    plan; the groups are the network's, which does not change)."""
    if dispatch.fake_tensors(*plan.steps[0].index.values()):  # no values to check or keep
        return _build_layout(plan, layers, groups, checked=False)
    if plan.layout is None:
        # Kept on the plan across calls: never made of inference tensors (a first forward
        # under inference mode, then a training step that saves them for backward).
        with torch.inference_mode(False):
            plan.layout = _build_layout(plan, layers, groups)
    return plan.layout


def check_layout(layout: Layout) -> Layout:
    """Every step's gather indices in range and of the right count, checked once per layout:
    the native loop reads rows at these indices without bounds checks."""
    rows = layout.starts[-1] + layout.static_rows
    if len(layout.starts) != len(layout.slots) + 1:
        raise ValueError("hyperplane layout: starts must hold one entry per step, then the total")
    for s, R in enumerate(layout.slots):
        for part, index in (("h", layout.index_h[s]), ("m", layout.index_m[s])):
            if index.dtype != torch.int64 or index.numel() != layout.dims * R:
                raise ValueError(
                    f"hyperplane layout: step {s}'s {part} indices must be {layout.dims * R} "
                    f"int64 rows, got {index.numel()} {index.dtype}"
                )
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= rows):
                raise ValueError(
                    f"hyperplane layout: step {s}'s {part} indices leave the buffer's {rows} rows"
                )
    return layout


@dataclass(frozen=True)
class Sources:
    """Per step and group: the buffer rows each cell's H is gathered from (D * R,), and
    each group's dimensions as a device tensor."""

    h: tuple[tuple[Tensor, ...], ...]
    dims: tuple[Tensor, ...]


def sources(layout: Layout, device: torch.device) -> Sources:
    """`Sources` of a layout: group 0 reads the step's gathered rows, a later group reads the
    dimensions of the groups before it from this step's own output rows."""
    per_step = []
    for s, R in enumerate(layout.slots):
        rows = layout.index_h[s].clone()
        per_group = [rows.clone()]
        for group in layout.transforms[:-1]:
            for dim in group.dims:
                start = layout.starts[s] + dim * R
                rows[dim * R : (dim + 1) * R] = torch.arange(start, start + R, device=rows.device)
            per_group.append(rows.clone())
        per_step.append(tuple(t.to(device) for t in per_group))
    dims = tuple(torch.tensor(g.dims, device=device) for g in layout.transforms)
    return Sources(tuple(per_step), dims)

"""Hyperplane (anti-diagonal) scheduler for N-D grids (docs/model.md section 2.2).

Cell (p, l) (grid position p, layer l) depends only on (p - e_k, l) and (p, l - 1), so all
cells with sum(p) + l = s are independent, and all their inputs lie on hyperplane s - 1 or
on the grid's boundary. A grid therefore takes sum(sizes) + L - 1 sequential steps instead
of prod(sizes) * L.

Each step gathers its cells' incoming vectors with one `index_select` per part (h, m) for all
dimensions at once, from the previous hyperplane's outputs followed by the step's rows of
the static pools (boundary state, projected input, zeros; those rows are gathered for all
steps at once before the loop), using index tensors planned once per grid shape. Then:
* layers sharing one block (``tied``): one block call for the whole hyperplane;
* per-layer weights: the hyperplane is laid out as (layer, slot) with every layer padded to
  the same number of slots (empty slots read zeros), and each transform is one batched GEMM
  (`torch.baddbmm`) over the layers' stacked weights.
Nothing is written in place into a tensor autograd needs: each step's outputs are new.

Where every transform is a standard LSTM, `run` hands all steps to `gridlstm.nn.handwritten`
instead (one autograd Function with a hand-written backward; same plan, same function).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gridlstm.nn import handwritten
from gridlstm.nn.block import ACTIVATIONS, LSTMTransform, lstm_pointwise


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
    layout: handwritten.Layout | None = None  # built on first use (`layout`)


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


class LayerStack:
    """Every layer's transforms as batched GEMMs (per-layer weights).

    Weights are stacked (and transposed) once per forward. The dimensions a block computes
    from the same H (all non-priority ones) are fused: one `torch.baddbmm` over the layers
    and one pass of the LSTM arithmetic for all of them. ``__call__(dims, H, ms)`` takes rows
    laid out as (layer, slot) and is passed to `GridBlock.forward` as its ``apply``.
    """

    def __init__(self, blocks: nn.ModuleList) -> None:
        self.layers = len(blocks)
        block = blocks[0]
        first_priority = len(block.order) - len(block.priority)
        groups = [tuple(block.order[:first_priority])] + [(d,) for d in block.priority]
        self.groups = {dims: None for dims in groups if dims}
        for dims in self.groups:
            per_layer = [[b.transforms[dim] for b in blocks] for dim in dims]
            if all(self._fusable(per_layer[0][0], ts[0]) for ts in per_layer):
                self.groups[dims] = self._stack(per_layer)
            else:
                self.groups[dims] = [self._stack([ts]) for ts in per_layer]

    @staticmethod
    def _fusable(a: nn.Module, b: nn.Module) -> bool:
        if isinstance(a, LSTMTransform) and isinstance(b, LSTMTransform):
            same = ("peephole", "coupled", "output_form")
            return all(getattr(a, k) == getattr(b, k) for k in same) and (a.bias is None) == (
                b.bias is None
            )
        return a is b  # a lone non-LSTM transform (or the same shared one)

    @staticmethod
    def _stack(per_dim: list[list[nn.Module]]) -> tuple:
        """Stack [dim][layer] transforms: weights (L, in, n*out), bias (L, 1, n*out)."""
        first = per_dim[0][0]
        n = len(per_dim)
        if isinstance(first, LSTMTransform):
            weights = [torch.stack([t.weight for t in ts]) for ts in per_dim]
            biases = (
                [torch.stack([t.bias for t in ts]) for ts in per_dim]
                if first.bias is not None
                else None
            )
            peeps = []
            for gate in range(3):
                vectors = [[t.peepholes()[gate] for t in ts] for ts in per_dim]
                peeps.append(
                    None
                    if vectors[0][0] is None
                    else torch.stack([torch.stack(v) for v in vectors], dim=1).unsqueeze(1)
                )  # (L, 1, n, d)
            options = (tuple(peeps), first.coupled, first.output_form)
            kind = "lstm"
        else:
            weights = [torch.stack([t.linear.weight for t in ts]) for ts in per_dim]
            has_bias = first.linear.bias is not None
            biases = (
                [torch.stack([t.linear.bias for t in ts]) for ts in per_dim] if has_bias else None
            )
            options = (first.activation,)
            kind = "nonlstm"
        weight_t = torch.cat(weights, dim=1).transpose(1, 2)
        bias = None if biases is None else torch.cat(biases, dim=1).unsqueeze(1)
        return kind, n, weight_t, bias, options

    def __call__(self, dims: list[int], H: Tensor, ms: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        entry = self.groups[tuple(dims)]
        if isinstance(entry, list):  # not fusable: one stacked GEMM per dimension
            return [self._run(e, H, [m])[0] for e, m in zip(entry, ms, strict=True)]
        return self._run(entry, H, ms)

    def _run(self, entry: tuple, H: Tensor, ms: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        kind, n, weight_t, bias, options = entry
        L, d = self.layers, ms[0].shape[-1]
        H3 = H.reshape(L, -1, H.shape[-1])
        z = torch.bmm(H3, weight_t) if bias is None else torch.baddbmm(bias, H3, weight_t)
        z = z.reshape(L, z.shape[1], n, -1)  # (L, rows, dims, gates)
        if kind == "nonlstm":
            h = ACTIVATIONS[options[0]](z)
            return [(h[:, :, i].reshape(-1, d), m) for i, m in enumerate(ms)]
        m = (
            torch.stack([m.reshape(L, -1, d) for m in ms], dim=2)
            if n > 1
            else ms[0].reshape(L, -1, 1, d)
        )
        h_new, m_new = lstm_pointwise(z, m, *options)
        return [(h_new[:, :, i].reshape(-1, d), m_new[:, :, i].reshape(-1, d)) for i in range(n)]


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


def _rows_first(t: Tensor) -> Tensor:
    """(B, *index dims, d) -> (prod(index dims), B, d)."""
    return t.movedim(0, -2).reshape(-1, t.shape[0], t.shape[-1])


def step(
    block: nn.Module,
    stack: LayerStack | None,
    rows_h: Tensor,
    rows_m: Tensor,
    index_h: Tensor,
    index_m: Tensor,
    keep: Tensor | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """One hyperplane: gather every cell's incoming (h, m) of all dimensions (``rows_*``:
    (rows, B, d) candidates, ``index_*``: dimension-major picks) and apply the block.

    Rows where ``keep`` (slots * B, 1) is False are padding time steps: they pass the time
    state through unchanged. This is the per-step function ``compile`` compiles.
    """
    dims, d = block.num_dims, rows_h.shape[-1]
    h_in = list(rows_h.index_select(0, index_h).reshape(dims, -1, d).unbind(0))
    m_in = list(rows_m.index_select(0, index_m).reshape(dims, -1, d).unbind(0))
    h_new, m_new = block(h_in, m_in, apply=stack)
    if keep is not None:
        h_new[0] = torch.where(keep, h_new[0], h_in[0])
        m_new[0] = torch.where(keep, m_new[0], m_in[0])
    return h_new, m_new


_PER_OP: list[bool] = [False]


@contextlib.contextmanager
def per_op_steps() -> Iterator[None]:
    """Run the per-op steps (`step` under autograd) even where `handwritten` applies: for
    comparisons and tests of the per-op path."""
    _PER_OP.append(True)
    try:
        yield
    finally:
        _PER_OP.pop()


def handwritten_blocker(
    stack: LayerStack, dropout: nn.Module, valid: Tensor | None, cells: Callable
) -> str | None:
    """Why `handwritten` does not apply (None if it does); the per-op steps run instead."""
    if _PER_OP[-1]:
        return "per_op_steps() asked for the per-op steps"
    if cells is not step:
        return "the compile option compiles the per-op step"
    if valid is not None:
        return "sequence lengths"
    if torch.compiler.is_compiling():
        return "torch.compile traces the per-op steps"
    for entry in stack.groups.values():
        if isinstance(entry, list) or entry[0] != "lstm":
            return "non-LSTM transforms, or options differing across layers"
        peeps, coupled, output_form = entry[4]
        if any(p is not None for p in peeps) or coupled or output_form != "standard":
            return "peepholes, coupled gates or the paper output form"
    return None


def layout(plan: Plan, stack: LayerStack) -> handwritten.Layout:
    """The plan as `handwritten` reads it (built once per plan; the groups are the
    network's, which does not change)."""
    if plan.layout is None:
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
        plan.layout = handwritten.Layout(
            dims=D,
            groups=stack.layers,
            slots=tuple(step.slots for step in steps),
            starts=tuple(starts),
            static_rows=static_at[-1] - starts[-1],
            index_h=tuple(index["h"]),
            index_m=tuple(index["m"]),
            transforms=tuple(handwritten.Group(dims) for dims in stack.groups),
        )
    return plan.layout


def run(
    blocks: nn.ModuleList,
    batched: bool,
    dropout: nn.Module,
    plan: Plan,
    sizes: list[int],
    inputs: dict[int, tuple[Tensor, Tensor | None]],
    boundary: list[tuple[Tensor, Tensor]],
    output_dims: list[int],
    valid: Tensor | None,
    cells: Callable = step,
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Execute a plan; ``cells`` is `step` or a compiled version of it. Returns (top
    outputs (B, *sizes, d * len(output_dims)), final state per grid dimension (h, m) each
    (L, B, *sizes without k, d)). Runs `handwritten` where it applies, else the per-op
    steps."""
    K, L = len(sizes), len(blocks)
    some = next(iter(inputs.values()))[0]
    batch, d = some.shape[0], some.shape[-1]
    stack = LayerStack(blocks if batched else blocks[:1])
    zero = some.new_zeros(1, batch, d)
    pools: dict[tuple[int, str], Tensor] = {}
    for dim in range(K + 1):
        for part, index in (("h", 0), ("m", 1)):
            pool = [zero]
            if dim < K:
                pool.append(_rows_first(boundary[dim][index].movedim(0, 1)))
            given = inputs.get(dim, (None, None))[index]
            if given is not None:
                pool.append(_rows_first(given))
            pools[dim, part] = torch.cat(pool) if len(pool) > 1 else zero

    # Every step's static rows in one gather per part before the loop (a per-step gather
    # from the pools would cost a zero-filled pool-sized gradient per step).
    steps = plan.steps
    static_all: dict[str, Tensor] = {}
    for part in ("h", "m"):
        pool = torch.cat([pools[dim, part] for dim in range(K + 1)])
        wanted = torch.cat([step.static[part] for step in steps])
        static_all[part] = pool.index_select(0, wanted)

    if handwritten_blocker(stack, dropout, valid, cells) is None:
        entries = list(stack.groups.values())
        params = [e[2] for e in entries] + [e[3] for e in entries]
        static = torch.stack([static_all["h"], static_all["m"]])
        p = dropout.p if dropout.training else 0.0
        h_all, m_all = handwritten.run(layout(plan, stack), static, params, p).unbind(0)
        columns = [h_all.index_select(0, plan.top_rows[dim]) for dim in output_dims]
        ends = [tuple(t.index_select(0, rows) for t in (h_all, m_all)) for rows in plan.last_rows]
        return _shaped(columns, ends, sizes, L)

    stack = stack if batched else None
    static = {
        part: list(t.split([len(step.static[part]) for step in steps]))
        for part, t in static_all.items()
    }
    prev: dict[str, Tensor] = {}  # part -> previous outputs, (K + 1) * slots rows of (B, d)
    tops: dict[int, list[Tensor]] = {dim: [] for dim in output_dims}
    top_at: list[int] = []
    lasts: list[dict[str, list[Tensor]]] = [{"h": [], "m": []} for _ in range(K)]
    last_at: list[list[int]] = [[] for _ in range(K)]
    for number, step in enumerate(steps):
        rows = {}
        for part in ("h", "m"):
            rows[part] = static[part][number]
            if part in prev:
                rows[part] = torch.cat([prev[part], rows[part]]) if len(rows[part]) else prev[part]
        keep = None
        if valid is not None:
            keep = valid.t().index_select(0, step.time).unsqueeze(-1).reshape(-1, 1)
        h_new, m_new = cells(
            blocks[0], stack, rows["h"], rows["m"], step.index["h"], step.index["m"], keep
        )
        h_cells = [h.reshape(step.slots, batch, d) for h in h_new]
        m_cells = [m.reshape(step.slots, batch, d) for m in m_new]
        if len(step.top):
            for dim in output_dims:
                tops[dim].append(h_cells[dim].index_select(0, step.top))
            top_at.extend(step.top_at)
        for k, (rows, at) in enumerate(step.last):
            if len(rows):
                lasts[k]["h"].append(h_cells[k].index_select(0, rows))
                lasts[k]["m"].append(m_cells[k].index_select(0, rows))
                last_at[k].extend(at)
        if number + 1 < len(steps):
            if dropout.p > 0:  # on the depth h passed up between layers (not the output)
                h_cells[K] = dropout(h_cells[K])
            prev = {"h": torch.cat(h_cells), "m": torch.cat(m_cells)}

    device = some.device
    order = torch.argsort(torch.tensor(top_at, device=device))
    columns = [torch.cat(tops[dim]).index_select(0, order) for dim in output_dims]
    ends = []
    for k in range(K):
        order = torch.argsort(torch.tensor(last_at[k], device=device))
        ends.append(tuple(torch.cat(lasts[k][part]).index_select(0, order) for part in ("h", "m")))
    return _shaped(columns, ends, sizes, L)


def _shaped(
    columns: list[Tensor], ends: list[tuple[Tensor, Tensor]], sizes: list[int], L: int
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """`run`'s results from rows of (B, d): per output dimension its top-layer h at every
    position, in order; per grid dimension k the (h, m) of the cells at its far end, in
    (layer, position without k) order."""
    batch, d = columns[0].shape[1], columns[0].shape[2]
    output = torch.cat(columns, dim=-1).movedim(1, 0).reshape(batch, *sizes, -1)
    final = []
    for k, pair in enumerate(ends):
        rest = sizes[:k] + sizes[k + 1 :]
        final.append(tuple(t.reshape(L, *rest, batch, d).movedim(-2, 1) for t in pair))
    return output, final

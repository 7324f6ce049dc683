"""Execute a hyperplane plan: the kernel layer's steps where they apply, else the per-op
steps one hyperplane at a time.

Every step's static rows (boundary state, projected input, zeros) are gathered in one
`index_select` per part before the loop. Where every transform is a standard LSTM, all steps
go to one of the kernel layer's step implementations (`gridlstm.nn.kernels.ops.hyperplane`
chooses: the fused Triton step on a GPU, which also covers the paper output form; the
native loop on a CPU; the handwritten PyTorch steps); `handwritten_blocker` names what
they do not cover.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gridlstm.nn import dispatch
from gridlstm.nn.backends import compiled
from gridlstm.nn.backends.base import Call, Network
from gridlstm.nn.backends.hyperplane import per_op
from gridlstm.nn.backends.hyperplane.per_op import LayerStack
from gridlstm.nn.kernels import ops, plans
from gridlstm.nn.kernels.plans import Plan


def _rows_first(t: Tensor) -> Tensor:
    """(B, *index dims, d) -> (prod(index dims), B, d)."""
    return t.movedim(0, -2).reshape(-1, t.shape[0], t.shape[-1])


def paper_forms(stack: LayerStack) -> tuple[bool, ...]:
    """Per transform group: whether it uses the paper output form h = tanh(o m')."""
    return tuple(entry[4][2] == "paper" for entry in stack.groups.values())


def handwritten_blocker(
    stack: LayerStack,
    dropout: nn.Module,
    valid: Tensor | None,
    cells: Callable,
    paper_form: bool = False,
) -> str | None:
    """Why `handwritten` does not apply (None if it does); the per-op steps run instead.
    ``paper_form``: whether the paper output form is covered (by the fused step)."""
    if cells is not per_op.step:
        return "the compile option compiles the per-op step"
    if valid is not None:
        return "sequence lengths"
    for entry in stack.groups.values():
        if isinstance(entry, list) or entry[0] != "lstm":
            return "non-LSTM transforms, or options differing across layers"
        peeps, coupled, output_form = entry[4]
        if any(p is not None for p in peeps) or coupled:
            return "peepholes or coupled gates"
        if output_form != "standard" and not paper_form:
            return "the paper output form"
    return None


# Plans kept per network, least recently used evicted first (a network's ``max_plans``
# overrides). A plan costs 5-68 ms to build and 9-367 kB to keep (7 x 7 to 50 x 50 grids,
# 2-core CPU, docs/backends.md section 2); translation meets thousands of (source, target) shapes, a
# bucketed epoch far fewer.
MAX_PLANS = 256


def batched(net: Network) -> bool:
    """Per-layer weights: the scheduler batches the layers' GEMMs."""
    return not net.tied and net.num_layers > 1


def plan_for(net: Network, sizes: list[int], device: torch.device) -> Plan:
    """The index plan of a grid shape for a network, built once per shape and device while
    it stays among the network's ``max_plans`` most recently used (kept on the network, in
    ``_plans``, so that it goes where the network goes: a copy, a pickle)."""
    build = (sizes, net.num_layers, batched(net), net.input_dims, net.memory_proj is not None)
    if dispatch.fake_tensors():  # fake index tensors (no values): made for this call only
        return plans.to_device(plans.plan(*build), device)
    cache: OrderedDict[tuple, Plan] = net.__dict__.setdefault("_plans", OrderedDict())
    key = (tuple(sizes), str(device))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    # Kept across calls: never made of inference tensors, which a later training call
    # could not save for backward (an inference-mode forward, then a training step).
    with torch.inference_mode(False):
        cache[key] = plans.to_device(plans.plan(*build), device)
    while len(cache) > getattr(net, "max_plans", MAX_PLANS):
        cache.popitem(last=False)
    return cache[key]


def run(net: Network, call: Call) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """The hyperplane backend on a network's forward (`gridlstm.nn.backends.base`)."""
    sizes = list(call.x.shape[1:-1])
    return execute(
        net.blocks,
        batched(net),
        net.dropout,
        plan_for(net, sizes, call.x.device),
        sizes,
        call.inputs,
        call.boundary,
        net.output_dims,
        call.valid,
        compiled.compiled_step(per_op.step, net.compile_mode),
    )


def execute(
    blocks: nn.ModuleList,
    batched: bool,
    dropout: nn.Module,
    plan: Plan,
    sizes: list[int],
    inputs: dict[int, tuple[Tensor, Tensor | None]],
    boundary: list[tuple[Tensor, Tensor]],
    output_dims: list[int],
    valid: Tensor | None,
    cells: Callable = per_op.step,
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

    # The fused Triton step (GPU) covers the paper output form too; the PyTorch one does not.
    choice = ops.hyperplane(
        some,
        handwritten_blocker(stack, dropout, valid, cells, paper_form=True),
        handwritten_blocker(stack, dropout, valid, cells),
    )
    if choice is not None:
        entries = list(stack.groups.values())
        params = [e[2] for e in entries] + [e[3] for e in entries]
        static = torch.stack([static_all["h"], static_all["m"]])
        p = dropout.p if dropout.training else 0.0
        # The rows read: each output dimension's top h, then the far-end cells' h, then their m.
        tops = [plan.top_rows[dim] for dim in output_dims]
        none = tops[0].new_empty(0)  # a 1-LSTM (K = 0) has no far-end cells
        picks = (torch.cat([*tops, *plan.last_rows]), torch.cat([none, *plan.last_rows]))
        layout = plans.layout(plan, stack.layers, list(stack.groups))
        rows = ops.hyperplane_steps(
            choice, layout, static, params, picks, p, plan=plan, paper=paper_forms(stack)
        )
        h_rows, m_rows = rows.split([len(picks[0]), len(picks[1])])
        counts = [len(t) for t in plan.last_rows]
        columns = list(h_rows.split([len(t) for t in tops] + [sum(counts)])[: len(tops)])
        h_ends = h_rows[len(h_rows) - sum(counts) :].split(counts)
        ends = list(zip(h_ends, m_rows.split(counts), strict=True))
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
        real = None
        if valid is not None:
            real = valid.t().index_select(0, step.time).unsqueeze(-1).reshape(-1, 1)
        h_new, m_new = cells(
            blocks[0], stack, rows["h"], rows["m"], step.index["h"], step.index["m"], real
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

"""CUDA graphs of a GridLSTM's whole forward and backward, one per input shape.

A Grid LSTM step is many small kernels, so on a GPU its time goes to launching them
(docs/benchmarks.md). `torch.cuda.make_graphed_callables` records the forward and the backward
once and replays them as two launches. A graph is fixed to its shapes, so `Graphed` keeps one
per input signature (shapes, dtypes, which inputs need gradients, whether a state is passed)
and runs the network eagerly where a graph cannot help or cannot be recorded: in evaluation or
without gradients, with sequence lengths or packed input, under autocast (whose weight cache
graphs cannot hold), on the CPU, past `MAX_SHAPES` signatures (the shapes vary, so graphs
would only cost memory; said once), and for good once a recording failed (e.g. the per-op
hyperplane steps copy index lists to the GPU inside the step; said once).

``graphed(net)`` switches a network over in place: its parameters, state dict and checkpoints
are unchanged, so a run with graphs resumes one without and back.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)
MAX_SHAPES = 8


def _flatten(state: Any) -> tuple[list[Tensor], Any]:
    """A (nested) state's tensors and its structure (None, a pair, a list of pairs)."""
    if state is None:
        return [], None
    if isinstance(state, Tensor):
        return [state], "tensor"
    parts = [_flatten(part) for part in state]
    return [t for tensors, _ in parts for t in tensors], (type(state), tuple(s for _, s in parts))


def _rebuild(tensors: list[Tensor], structure: Any) -> tuple[Any, list[Tensor]]:
    """`_flatten`'s inverse: (state, the tensors left over)."""
    if structure is None:
        return None, tensors
    if structure == "tensor":
        return tensors[0], tensors[1:]
    kind, parts = structure
    built = []
    for part in parts:
        value, tensors = _rebuild(tensors, part)
        built.append(value)
    return kind(built), tensors


class _Flat(nn.Module):
    """The network with tensors-only arguments and results, as graph capture needs them.
    Not registered under the network, so its state dict does not change."""

    def __init__(self, net: nn.Module, structure: Any) -> None:
        super().__init__()
        self.net, self.structure = net, structure
        self.out_structure: Any = None

    def forward(self, input: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        rebuilt, _ = _rebuild(list(state), self.structure)
        output, final = type(self.net).forward(self.net, input, rebuilt)
        tensors, self.out_structure = _flatten(final)
        return (output, *tensors)


class Graphed:
    """A GridLSTM's forward, replayed from CUDA graphs where it can be (see the module)."""

    def __init__(self, net: nn.Module, max_shapes: int = MAX_SHAPES) -> None:
        self.net, self.max_shapes = net, max_shapes
        self.graphs: dict[tuple, tuple[nn.Module, Any]] = {}
        self.warned = False
        self.failed = ""  # why recording failed: then everything runs eagerly
        self.device_type = "cuda"  # where graphs are recorded (tests simulate them on "cpu")

    def eager_reason(self, input: Any, lengths: Any) -> str | None:
        """Why this call runs eagerly (None: it replays or records a graph)."""
        if self.failed:
            return f"recording failed ({self.failed})"
        if not isinstance(input, Tensor) or lengths is not None:
            return "packed input or sequence lengths"
        if input.device.type != self.device_type:
            return f"not on a {self.device_type.upper()} device"
        if not (self.net.training and torch.is_grad_enabled()):
            return "evaluation or no gradients"
        if torch.is_autocast_enabled(self.device_type):
            return "autocast"
        return None

    def key(self, structure: Any, args: tuple[Tensor, ...]) -> tuple:
        """A recording's signature: the inputs' shapes, dtypes, devices and which need
        gradients, and where every parameter's storage lives. A graph replays fixed memory
        addresses, so after ``net.to(other_device)``, a ``load_state_dict`` that replaced a
        parameter or a new parameter tensor, it must not replay (a new recording is made)."""
        params = tuple((id(p), p.data_ptr(), str(p.device)) for p in self.net.parameters())
        inputs = tuple((tuple(t.shape), t.dtype, str(t.device), t.requires_grad) for t in args)
        return structure, inputs, params

    def __call__(self, input: Tensor, state: Any = None, lengths: Any = None):
        if self.eager_reason(input, lengths) is not None:
            return type(self.net).forward(self.net, input, state, lengths)
        tensors, structure = _flatten(state)
        args = (input, *tensors)
        key = self.key(structure, args)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_shapes:
                if not self.warned:
                    self.warned = True
                    log.warning(
                        "cuda_graphs: more than %d input shapes; the others run without graphs "
                        "(graphs pay off only for fixed shapes)",
                        self.max_shapes,
                    )
                return type(self.net).forward(self.net, input, state, lengths)
            flat = _Flat(self.net, structure)
            samples = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in args)
            try:
                graphed = torch.cuda.make_graphed_callables(flat, samples)
            except RuntimeError as error:  # e.g. a host-to-device copy inside the step
                self.failed = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                log.warning(
                    "cuda_graphs: this network cannot be recorded (%s); it runs without graphs",
                    self.failed,
                )
                return type(self.net).forward(self.net, input, state, lengths)
            self.graphs[key] = (graphed, flat)
            log.info(
                "cuda_graphs: recorded the forward and backward for input %s", tuple(input.shape)
            )
        graphed, flat = self.graphs[key]
        # The graph's outputs live in its static buffers, which the next replay overwrites:
        # copies (differentiable) are what the caller keeps, e.g. a carried state.
        results = [t.clone() for t in graphed(*args)]
        final, _ = _rebuild(list(results[1:]), flat.out_structure)
        return results[0], final


def graphed(net: nn.Module, max_shapes: int = MAX_SHAPES) -> Graphed:
    """Switch ``net`` (a GridLSTM) to `Graphed` in place; returns the dispatcher."""
    dispatcher = Graphed(net, max_shapes)
    net.forward = dispatcher  # an instance attribute: parameters and state dict unchanged
    return dispatcher


__all__ = ["MAX_SHAPES", "Graphed", "graphed"]

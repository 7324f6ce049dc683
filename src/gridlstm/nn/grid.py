"""Grid LSTM networks: K sequence/spatial dimensions plus depth (docs/model.md section 2).

``grid_dims = K``: 0 gives the 1-LSTM (a vector in, L blocks along depth), 1 the 2-LSTM
(time x depth), 2 the 3-LSTM (two spatial dimensions x depth), and so on. Dimension indices:
the grid dimensions are 0..K-1 in the order of the input's axes, depth is K.

The input at every grid position enters at the bottom of depth through one linear projection
into h (none where ``project_input`` is False, the 2-LSTM's default when the input already
has hidden_size features) and, with ``input_to_memory``, a second one into m (otherwise the
bottom m is 0).
The output is the top depth hidden vector at every position. Along each grid dimension the
(h, m) pairs flow in increasing index; the state is what enters at index 0 and leaves at the
far end, per layer, so chunks of a sequence can be chained (truncated BPTT).

Backends (``backend``; ``"auto"`` picks the first that applies, `gridlstm.nn.backends.resolve`):
* ``fast``: exact factorisation (docs/backends.md section 1). K = 1: per layer one cuDNN-able
  LSTM over time (`torch.nn.LSTM`'s kernel on the time transform's weights) plus one batched
  depth step for all time steps. K = 0 with one block for all layers: one LSTM kernel over
  L steps of zero input with h0 = the projected input.
* ``scan`` (K = 1): the same per-layer factorisation with the time recurrence run step by
  step, so it covers what the kernel cannot (paper output form, peepholes, coupled gates,
  non-LSTM dimensions, time priority); see `gridlstm.nn.backends.scan`.
* ``hyperplane``: cells with equal coordinate sum are independent; sum(sizes) + L - 1
  sequential steps, each a few index gathers and one block call per layer on the hyperplane
  (one call in all when the layers share a block); see `gridlstm.nn.backends.hyperplane`.
* ``naive``: one cell at a time (the reference order).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from gridlstm.nn import backends, calling
from gridlstm.nn.backends import compiled
from gridlstm.nn.block import GridBlock
from gridlstm.nn.checks import check_choice, check_sizes
from gridlstm.nn.options_state import FunctionOptions

log = logging.getLogger(__name__)
BACKENDS = ("auto", *backends.BACKENDS)  # the table in gridlstm.nn.backends, and "auto"
Pair = tuple[Tensor, Tensor]


def compile_mode(option: bool | str | None) -> str | None:
    """The ``compile`` option as a torch.compile mode (None: eager)."""
    if option is None or option is False:
        return None
    if option is True:
        return "default"
    if option not in compiled.MODES:
        choices = ", ".join(repr(m) for m in (False, True, *compiled.MODES))
        raise ValueError(f"compile must be one of {choices}; got {option!r}")
    return option


class GridLSTM(FunctionOptions, nn.Module):
    """A Grid LSTM network with the `torch.nn.LSTM` calling convention.

    Args:
        input_size: features of the input at each grid position (of the vector for K = 0).
        hidden_size: d.
        num_layers: L, blocks along depth.
        grid_dims: K, sequence/spatial dimensions of the input (0, 1, 2, ...).
        kinds: per dimension (K grid dims then depth) ``"lstm"`` or ``"nonlstm"``.
        priority: ordered priority dimensions; ints or ``"depth"``, ``[]`` for none; also one
            name: ``"depth"``, ``"none"``, ``"time"`` (K = 1). Default: none for a 2-LSTM
            (K = 1) [ours, measured: a tied 2-LSTM at depth 8 with depth priority fell to
            exact-match 0.079 on 3-digit addition where none kept 0.912, docs/claims/deep_tied;
            coreylynch/grid-lstm and TensorFlow's Grid2LSTMCell prioritise depth], depth
            otherwise [ours, as coreylynch].
        tied: one block for every layer ("tied along depth", paper 3.5 (a), docs/model.md 1.4).
        tie_depth_lstm: per-layer blocks whose depth transform is shared (paper 3.5 (b),
            docs/model.md 1.4, coreylynch's ``tie_weights``).
        share_dims: one transform for all dimensions of a block (paper 3.5 (c),
            docs/model.md 1.4, TF ``tied``).
        input_dims: dimensions whose incoming h at the bottom layer is the projected input
            (paper 3.4; default depth). For a grid dimension this replaces the h it receives
            at layer 0 (TensorFlow GridRNNCell's input dimensions); its m still flows.
        output_dims: dimensions whose top-layer hidden vectors form the output (concatenated).
        input_to_memory: also project the input into the incoming m of the input dimensions.
        project_input: False feeds the input itself as the incoming h (it must then have
            hidden_size features per input dimension), e.g. when an embedding already is
            the projection. Default: True, except for a 2-LSTM (K = 1) whose input already
            has hidden_size x len(input_dims) features and no ``input_to_memory`` [ours: the
            suite's deep tied results were measured without it; a linear map in front of the
            first block's own weights adds nothing they cannot learn].
        dropout: on the depth hidden vector between layers.
        batch_first: K = 1 only: input and output are (B, T, F) instead of nn.LSTM's default
            time-major (T, B, F). The state is (L, B, d) either way, as in nn.LSTM.
        backend: ``auto``, ``fast``, ``scan``, ``hyperplane`` or ``naive``.
        compile: ``torch.compile`` the per-step function of the ``scan`` and ``hyperplane``
            backends (`gridlstm.nn.backends.compiled`): True or ``"default"``, ``"reduce-overhead"``
            (adds CUDA graphs on GPUs) or ``"max-autotune"``. No effect on ``fast`` (one
            kernel call per layer) and ``naive`` (the reference). To compile a whole network
            instead, call ``torch.compile(net)`` as for any module.
        device: where the parameters live (as nn.LSTM).
        dtype: their floating type (as nn.LSTM).
        output_form: ``standard`` h' = o * tanh(m') or ``paper`` h' = tanh(o * m').
        bias: biases on the transforms.
        forget_bias: initial forget-gate bias.
        peephole: peephole connections.
        coupled: coupled input-forget gate (i = 1 - f).
        activation: of non-LSTM dimensions: ``tanh``, ``relu`` or ``sigmoid``.
        bidirectional: nn.LSTM's option; only False (a Grid LSTM has no reverse direction).
        proj_size: nn.LSTM's option; only 0.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        grid_dims: int = 1,
        *,
        kinds: Sequence[str] | None = None,
        priority: str | int | Sequence[int | str] | None = None,
        tied: bool = False,
        tie_depth_lstm: bool = False,
        share_dims: bool = False,
        output_form: str = "standard",
        bias: bool = True,
        forget_bias: float = 1.0,
        peephole: bool = False,
        coupled: bool = False,
        activation: str = "tanh",
        input_dims: Sequence[int | str] = ("depth",),
        output_dims: Sequence[int | str] = ("depth",),
        input_to_memory: bool = False,
        project_input: bool | None = None,
        dropout: float = 0.0,
        batch_first: bool = False,
        backend: str = "auto",
        compile: bool | str = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        if bidirectional:  # nn.LSTM's options that a Grid LSTM does not have: said, not ignored
            raise ValueError(
                "bidirectional=True is not supported: a Grid LSTM runs each grid dimension one "
                "way; run a second one on the flipped input and concatenate"
            )
        if proj_size:
            raise ValueError(f"proj_size={proj_size} is not supported (only 0, nn.LSTM's default)")
        check_sizes(input_size, hidden_size, num_layers, dropout)
        if isinstance(grid_dims, bool) or not isinstance(grid_dims, int) or grid_dims < 0:
            raise ValueError(f"grid_dims must be an integer >= 0, got {grid_dims!r}")
        check_choice("backend", backend, BACKENDS)
        self.compile_mode = compile_mode(compile)
        if tied and tie_depth_lstm:
            raise ValueError("tied=True already shares the whole block; drop tie_depth_lstm")
        if share_dims and tie_depth_lstm:
            raise ValueError(
                "share_dims=True gives each block one transform for all dimensions, so there is "
                "no separate depth transform for tie_depth_lstm to share; use tied=True to share "
                "the whole block across layers"
            )
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.grid_dims = num_layers, grid_dims
        self.depth = grid_dims  # index of the depth dimension
        self.batch_first, self.tied, self.tie_depth_lstm = batch_first, tied, tie_depth_lstm
        if priority is None:  # the measured default of a 2-LSTM, else depth [ours]
            priority = "none" if grid_dims == 1 else "depth"
        self.priority = self._dims("priority", self._priority_list(priority), allow_empty=True)
        self.input_dims = self._dims("input_dims", input_dims)
        self.output_dims = self._dims("output_dims", output_dims)

        block = {  # every block's options; those that define its function travel too
            "priority": self.priority,
            "kinds": kinds,
            "output_form": output_form,
            "coupled": coupled,
            "activation": activation,
        }
        self.remember_options(
            legacy={"priority": [self.depth]} if grid_dims == 1 else None,  # the 0.4 default
            input_dims=self.input_dims,
            output_dims=self.output_dims,
            input_to_memory=input_to_memory,
            **block,
        )
        block |= {"share_dims": share_dims, "bias": bias, "forget_bias": forget_bias}

        def make(shared: dict[int, nn.Module] | None = None) -> GridBlock:
            return GridBlock(grid_dims + 1, hidden_size, shared=shared, peephole=peephole, **block)

        first = make()
        if tied:
            blocks = [first] * num_layers
        elif tie_depth_lstm:
            blocks = [first] + [
                make({self.depth: first.transforms[self.depth]}) for _ in range(num_layers - 1)
            ]
        else:
            blocks = [first] + [make() for _ in range(num_layers - 1)]
        self.blocks = nn.ModuleList(blocks)
        # One projection per input dimension, computed as one GEMM.
        width = hidden_size * len(self.input_dims)
        if project_input is None:  # the 2-LSTM's measured default; other grids project
            project_input = grid_dims != 1 or input_size != width or input_to_memory
        if not project_input and input_size != width:
            raise ValueError(
                f"project_input=False needs input_size = hidden_size x {len(self.input_dims)} "
                f"input dims = {width}, got {input_size}"
            )
        if not project_input and input_to_memory:
            raise ValueError("input_to_memory=True needs project_input=True")
        self.input_proj = nn.Linear(input_size, width) if project_input else nn.Identity()
        self.memory_proj = nn.Linear(input_size, width) if input_to_memory else None
        self.dropout = nn.Dropout(dropout)

        self._register_load_state_dict_pre_hook(functools.partial(calling.check_tied_state, self))
        self.backend = backend
        if device is not None or dtype is not None:  # nn.LSTM's factory arguments
            self.to(device=device, dtype=dtype)
        log.debug(  # the training command names the backend once the config is checked
            "GridLSTM(grid_dims=%d, layers=%d): backend=%s", grid_dims, num_layers, self.backend
        )

    def reset_parameters(self) -> None:
        """Re-initialise every weight as at construction; shared (tied) modules once each."""
        for module in self.modules():  # deduplicated: a tied block is visited once
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    @property
    def backend(self) -> str:
        """The backend in use: one of `gridlstm.nn.backends.BACKENDS` (``fast``, ``scan``,
        ``hyperplane``, ``naive``)."""
        return self._backend

    @backend.setter
    def backend(self, backend: str) -> None:
        """Assignable after construction (``auto`` re-picks); ``fast`` where it does not apply
        is refused, since it would compute a different function."""
        check_choice("backend", backend, BACKENDS)
        self._backend = backends.resolve(backend, self)

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return (
            f"grid_dims={self.grid_dims}, layers={self.num_layers}, hidden={self.hidden_size}, "
            f"priority={self.priority}, tied={self.tied}, tie_depth_lstm={self.tie_depth_lstm}, "
            f"backend={self.backend!r}, params={params:,}"
            + (f", compile={self.compile_mode!r}" if self.compile_mode else "")
        )

    @property
    def output_size(self) -> int:
        """Features of the output: d per output dimension."""
        return self.hidden_size * len(self.output_dims)

    def _priority_list(self, priority: str | int | Sequence[int | str]) -> Sequence[int | str]:
        """The forms `Grid2dLSTM` and the configs use, as a list: ``"depth"``, ``"none"``,
        ``"time"`` (the 2-LSTM's grid dimension 0) or one dimension."""
        if isinstance(priority, str):
            names: dict[str, list] = {"depth": ["depth"], "none": []}
            if self.grid_dims == 1:
                names["time"] = [0]
            if priority not in names:
                choices = ", ".join(repr(name) for name in names)
                raise ValueError(
                    f"priority must be one of {choices} or a list of dimensions, got {priority!r}"
                )
            return names[priority]
        if isinstance(priority, int) and not isinstance(priority, bool):
            return [priority]
        return priority

    def _dims(self, option: str, dims: Sequence[int | str], allow_empty: bool = False) -> list[int]:
        """Dimension names/indices -> indices ("depth" is the last dimension)."""
        resolved = []
        for dim in dims:
            index = self.depth if dim == "depth" else dim
            if isinstance(index, bool) or index not in range(self.grid_dims + 1):
                allowed = ", ".join([*map(str, range(self.grid_dims)), "'depth'"])
                raise ValueError(f"{option} entries must be one of {allowed}; got {dim!r}")
            resolved.append(index)
        if len(set(resolved)) != len(resolved) or (not resolved and not allow_empty):
            raise ValueError(f"{option} must list distinct dimensions, got {list(dims)!r}")
        return resolved

    # ------------------------------------------------------------------ public API
    def forward(self, input: Tensor, state=None, lengths: Tensor | None = None, *, hx=None):
        """``output, state = net(input, state, lengths)``; ``hx=`` is `nn.LSTM`'s name for
        ``state`` (code written for nn.LSTM passes it by keyword).

        Unbatched input (the shapes below without B; for K = 1 ``(T, F)``) gives unbatched
        output and state, as `nn.LSTM` does.

        K = 0: input (B, F) -> output (B, d * len(output_dims)), state None.
        K = 1: input (T, B, F) -> output (T, B, d * len(output_dims)), or (B, T, ...) both
        with ``batch_first=True``; state (h, m) each (L, B, d), the time dimension's vectors,
        like `nn.LSTM`'s (h_n, c_n).
        ``lengths`` (B,): steps t >= length leave the time state unchanged (so the final
        state is the one after each sequence's last step) and give zero output.
        K = 1 also takes a `PackedSequence` (as nn.LSTM: the output is packed the same way, the
        state is in the batch's original order); it runs as the padded batch with ``lengths``.
        K >= 2: input (B, S_1..S_K, F) -> output (B, S_1..S_K, d * len(output_dims)); state a
        list with, per grid dimension k, (h, m) each (L, B, *sizes without S_k, d).
        """
        if hx is not None:
            if state is not None:
                raise TypeError("GridLSTM.forward got both state and hx (the same argument)")
            state = hx
        if isinstance(input, PackedSequence):
            return calling.forward_packed(self, input, state, lengths)
        if isinstance(input, Tensor) and input.dim() == self.grid_dims + 1:
            if lengths is not None:
                raise ValueError("lengths needs batched input (one length per batch row)")
            at = 1 if self.grid_dims == 1 and not self.batch_first else 0
            output, final = self.forward(
                input.unsqueeze(at), calling.map_state(state, 1, "unsqueeze")
            )
            return output.squeeze(at), calling.map_state(final, 1, "squeeze")
        x = calling.check_input(self, input)
        batch_at = 1 if self.grid_dims == 1 and not self.batch_first else 0
        sizes = [n for i, n in enumerate(x.shape[:-1]) if i != batch_at]
        if 0 in sizes:  # nn.LSTM's error, for every grid dimension
            raise RuntimeError(
                f"Expected sequence length to be larger than 0 in GridLSTM: the input's grid "
                f"sizes are {tuple(sizes)}"
            )
        if x.shape[batch_at] == 0:  # as nn.LSTM: empty output and state of the right shapes
            return calling.empty_batch(self, x, batch_at)
        if self.grid_dims == 1 and not self.batch_first:
            x = x.transpose(0, 1)
        valid = calling.valid_steps(self, x, lengths)
        boundary = calling.boundary(self, x, state)
        d = self.hidden_size
        h_proj = self.input_proj(x).split(d, dim=-1)
        m_proj = self.memory_proj(x).split(d, dim=-1) if self.memory_proj is not None else None
        inputs = {
            dim: (h_proj[i], m_proj[i] if m_proj is not None else None)
            for i, dim in enumerate(self.input_dims)
        }
        call = backends.Call(x, inputs, boundary, valid, lengths)
        output, final = backends.run(self.backend, self, call)
        if valid is not None:
            output = output * valid.unsqueeze(-1).to(output.dtype)
        if self.grid_dims == 1:
            final = final[0]
            if not self.batch_first:
                output = output.transpose(0, 1)
        elif self.grid_dims == 0:
            final = None
        return calling.autocast_dtype(output, final, x.device.type)

    def flatten_parameters(self) -> None:
        """`nn.LSTM.flatten_parameters`'s counterpart, so that code calling it (after
        loading, ``DataParallel`` or ``.to()``) keeps working. Nothing to do: the fast path
        packs its kernel weights per call (`gridlstm.nn.kernels.lstm.kernel_weights`)
        and the other backends read the parameters as they are."""


__all__ = ["GridLSTM"]

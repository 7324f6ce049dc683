"""`torch.nn.LSTM`'s own kernel (oneDNN on CPU, cuDNN on GPU) run on slices of a block
transform's weight: the one private op the fast backend relies on, and its probe.

The op is private (``torch._VF.lstm``), so `kernel_agrees` checks once per device type and
dtype that our call computes what ``nn.LSTM`` computes; where it does not, GridLSTM falls
back to the scan or hyperplane backend instead of silently computing something else.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.utils._python_dispatch import _disable_current_modes

from gridlstm.nn import dispatch
from gridlstm.nn.precision import autocast_kernel_dtype, quiet_relayout

Pair = tuple[Tensor, Tensor]


def vf_lstm(*args: object) -> tuple[Tensor, Tensor, Tensor]:
    """``torch._VF.lstm``, the private op behind nn.LSTM.forward (one place to call it)."""
    return torch._VF.lstm(*args)


_KERNEL_AGREES: dict[tuple[str, torch.dtype], bool] = {}


def kernel_agrees(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether our call of the private LSTM op computes what ``nn.LSTM`` computes on this
    device and dtype. Checked once per (device type, dtype) per process, on a tiny LSTM:
    a torch release that changed the op's arguments would otherwise silently change the fast
    path's function. On disagreement (or an error) the caller falls back, with a warning."""
    if device.type == "meta" or dispatch.fake_tensors():  # shapes only: nothing to compare
        return True
    dtype = autocast_kernel_dtype(device) or dtype  # the dtype the kernel will run in
    key = (device.type, dtype)
    if key not in _KERNEL_AGREES:
        generator = torch.Generator().manual_seed(0)
        with torch.random.fork_rng(devices=[]):  # nn.LSTM's init must not move the global RNG
            reference = nn.LSTM(3, 4, batch_first=True)
        # The weights go in through functional_call, not Module.to: the first call may come
        # inside a torch.func transform, where Module.to's `.data` assignment is refused.
        weights = {
            name: (torch.rand(p.shape, generator=generator) - 0.5).to(device, dtype)
            for name, p in reference.named_parameters()
        }
        x = (torch.rand(2, 5, 3, generator=generator) - 0.5).to(device, dtype)
        h0 = torch.zeros(1, 2, 4, device=device, dtype=dtype)
        tolerance = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        try:
            # The probe is not the caller's work: outside any dispatch mode, so that a
            # FlopCounterMode around a first forward does not count it.
            with (
                _disable_current_modes(),
                torch.no_grad(),
                torch.autocast(device.type, enabled=False),
                quiet_relayout(),
            ):
                expected, (h_n, c_n) = torch.func.functional_call(reference, weights, (x, (h0, h0)))
                bias = weights["bias_ih_l0"] + weights["bias_hh_l0"]
                ours, (h_k, c_k) = lstm_kernel(
                    x, h0, h0, weights["weight_ih_l0"], weights["weight_hh_l0"], bias
                )
            agrees = all(
                torch.allclose(a.float(), b.float(), atol=tolerance, rtol=tolerance)
                for a, b in ((ours, expected), (h_k, h_n), (c_k, c_n))
            )
            problem = "its results differ from nn.LSTM's"
        except (RuntimeError, TypeError) as error:  # e.g. a changed signature
            agrees, problem = False, f"it raised {type(error).__name__}: {error}"
        if not agrees:
            warnings.warn(
                f"the fast path's LSTM kernel call (torch._VF.lstm, torch {torch.__version__}) "
                f"is not usable on {device.type} in {dtype}: {problem}; GridLSTM uses the "
                "scan backend (2-LSTM) or the hyperplane backend (1-LSTM) there instead",
                RuntimeWarning,
                stacklevel=3,
            )
        _KERNEL_AGREES[key] = agrees
    return _KERNEL_AGREES[key]


def kernel_weights(w_ih: Tensor, w_hh: Tensor, bias: Tensor | None, packed: bool) -> list[Tensor]:
    """The LSTM kernel's weight list [w_ih, w_hh(, b_ih, b_hh)] from slices of a transform's
    weight (b_hh: zeros, the transform has one bias).

    ``packed`` (cuDNN): the four are views of one new buffer, back to back from its start in
    this order, which is cuDNN's weight layout for a one-layer LSTM. cuDNN then runs on that
    buffer as it is. Given separate tensors it would warn on every call ("...call
    flatten_parameters()", a method GridLSTM does not have) and compact them into a buffer
    of its own. Either way one copy of the weights per call remains: a column slice of a
    transform's weight is not contiguous (docs/backends.md section 1).
    """
    tensors = [w_ih, w_hh] + ([bias, torch.zeros_like(bias)] if bias is not None else [])
    if not packed:
        return [t.contiguous() for t in tensors]
    starts = [sum(t.numel() for t in tensors[:i]) for i in range(len(tensors))]
    flat = w_ih.new_empty(sum(t.numel() for t in tensors))
    for start, t in zip(starts, tensors, strict=True):
        # In place into the new buffer, which autograd records: the gradient reaches t.
        flat.narrow(0, start, t.numel()).view_as(t).copy_(t)
    return [flat.narrow(0, s, t.numel()).view_as(t) for s, t in zip(starts, tensors, strict=True)]


def lstm_kernel(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor | None,
    lengths: Tensor | None = None,
) -> tuple[Tensor, Pair]:
    """Run `torch.nn.LSTM`'s kernel (oneDNN on CPU, cuDNN on GPU) on slices of a block
    transform's weight: ``w_hh`` multiplies the recurrent h, ``w_ih`` the input.

    x: (B, T, F) batch-first; h0, c0: (1, B, d). ``lengths``: run as a packed sequence, as
    nn.LSTM does (final state at each row's end). Under autocast the kernel runs with autocast
    off, on inputs cast to the dtype `gridlstm.nn.precision` decides: on CUDA autocast would
    run it in float16 even under bf16, and a dtype with no kernel runs in float32 instead.
    """
    wanted = autocast_kernel_dtype(x.device)
    if wanted is not None:
        with torch.autocast(x.device.type, enabled=False):
            up = [t.to(wanted) if t is not None else None for t in (x, h0, c0, w_ih, w_hh, bias)]
            return lstm_kernel(*up, lengths=lengths)
    params = kernel_weights(w_ih, w_hh, bias, packed=x.device.type == "cuda")
    has_bias = bias is not None
    # cuDNN keeps what backward needs only in "train" mode; follow grad mode like nn.LSTM
    # follows self.training (there is no dropout inside a one-layer kernel call).
    train = torch.is_grad_enabled()
    if lengths is None:
        with quiet_relayout():  # bf16 sizes cuDNN pads: it re-packs (docs: `quiet_relayout`)
            output, h_n, c_n = vf_lstm(x, (h0, c0), params, has_bias, 1, 0.0, train, False, True)
        return output, (h_n, c_n)
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    hx = (h0.index_select(1, order), c0.index_select(1, order))
    with quiet_relayout():
        data, h_n, c_n = vf_lstm(
            packed.data, packed.batch_sizes, hx, params, has_bias, 1, 0.0, train, False
        )
    packed_out = PackedSequence(data, packed.batch_sizes, order, unorder)
    output, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
    return output, (h_n.index_select(1, unorder), c_n.index_select(1, unorder))

"""Recurrent kernels under autocast run in the dtype `gridlstm.nn.precision` decides."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gridlstm.nn import GridLSTM, StackedGRU, StackedLSTM
from gridlstm.nn.kernels import lstm as kernel
from gridlstm.nn.precision import kernel_dtype, run_rnn


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, StackedLSTM, StackedGRU])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("onednn_bf16", [True, False], ids=["cpu-bf16", "cpu-no-bf16"])
def test_run_rnn_under_autocast_equals_the_module_cast_to_the_kernel_dtype(
    cls, packed, onednn_bf16, monkeypatch
):
    """Both answers of the CPU probe, whatever this CPU has: the expected dtype comes from
    the same decision the code makes (`kernel_dtype`), bf16 only where oneDNN has it."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
    expected = kernel_dtype("cpu", torch.bfloat16, None, onednn_bf16)
    assert expected == (torch.bfloat16 if onednn_bf16 else torch.float32)
    torch.manual_seed(0)
    kwargs = {"batch_first": True} | ({"bidirectional": True} if cls in (nn.LSTM, nn.GRU) else {})
    rnn = cls(5, 8, 2, **kwargs)
    x, lengths = torch.randn(3, 7, 5), torch.tensor([7, 4, 2])
    reference = copy.deepcopy(rnn).to(expected)

    def run(module, inputs):
        if packed:
            inputs = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        out, _ = module(inputs) if module is reference else run_rnn(module, inputs)
        return pad_packed_sequence(out, batch_first=True)[0] if packed else out

    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = run(rnn, x)
    assert got.dtype == expected
    torch.testing.assert_close(got, run(reference, x.to(expected)), rtol=0, atol=0)
    got.float().sum().backward()  # gradients reach the float32 parameters
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in rnn.parameters())


def test_run_rnn_outside_autocast_is_the_module_itself():
    torch.manual_seed(0)
    rnn, x = StackedLSTM(5, 8, 2, batch_first=True), torch.randn(3, 7, 5)
    out, (h, c) = rnn(x)
    expected, (h_e, c_e) = nn.LSTM.forward(rnn, x)
    assert torch.equal(out, expected) and torch.equal(h, h_e) and torch.equal(c, c_e)


def test_the_grid_kernel_runs_with_autocast_off_in_the_decided_dtype(monkeypatch):
    """Autocast never picks the kernel's dtype (on CUDA it would pick float16 under bf16):
    the kernel is called with autocast off, its input and weights already in that dtype."""
    seen = []
    real = kernel.vf_lstm

    def recording(*args):
        weights = args[2]
        seen.append((torch.is_autocast_enabled("cpu"), args[0].dtype, {w.dtype for w in weights}))
        return real(*args)

    monkeypatch.setattr(kernel, "vf_lstm", recording)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    net = GridLSTM(5, 8, 2, 1, batch_first=True, backend="fast")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(3, 7, 5))
    calls = [call for call in seen if call[0] or call[1] != torch.float32]
    assert calls and all(call == (False, torch.bfloat16, {torch.bfloat16}) for call in calls)

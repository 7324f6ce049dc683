"""Baselines: equal to torch.nn where the math coincides, to the independent reference
where it does not; the 2D MDLSTM against a per-cell loop written from Graves' equations."""

from __future__ import annotations

import pytest
import torch

from gridlstm.nn import DeepFeedForward, MDLSTM2d, StackedCellLSTM, StackedGRU, count_parameters
from tests.reference import reference_transform

IN, D, B, T, L = 5, 4, 3, 7, 2


def test_stacked_cell_lstm_without_variants_is_nn_lstm():
    torch.manual_seed(0)
    net = StackedCellLSTM(IN, D, L, batch_first=True).double()
    lstm = torch.nn.LSTM(IN, D, L, batch_first=True).double()
    with torch.no_grad():
        for layer, t in enumerate(net.layers):
            getattr(lstm, f"weight_hh_l{layer}").copy_(t.weight[:, :D])
            getattr(lstm, f"weight_ih_l{layer}").copy_(t.weight[:, D:])
            getattr(lstm, f"bias_ih_l{layer}").copy_(t.bias)
            getattr(lstm, f"bias_hh_l{layer}").zero_()
    x = torch.randn(B, T, IN, dtype=torch.float64)
    out, (h, c) = net(x)
    ref, (h_ref, c_ref) = lstm(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


@pytest.mark.parametrize("variant", [{"peephole": True}, {"coupled": True, "peephole": True}])
def test_stacked_cell_lstm_variants_match_the_reference(variant):
    torch.manual_seed(0)
    net = StackedCellLSTM(IN, D, L, batch_first=True, **variant).double()
    x = torch.randn(B, T, IN, dtype=torch.float64)
    out, _ = net(x)
    seq = x
    for t in net.layers:
        params = {
            "kind": "lstm",
            "W": t.weight,
            "b": t.bias,
            "form": "standard",
            "peep": t.peep,
            "coupled": t.coupled,
        }
        h = m = torch.zeros(B, D, dtype=torch.float64)
        outs = []
        for step in range(T):
            h, m = reference_transform(params, torch.cat([h, seq[:, step]], -1), m)
            outs.append(h)
        seq = torch.stack(outs, 1)
    torch.testing.assert_close(out, seq)


def test_gru_and_feed_forward_shapes_and_sizes():
    out, h = StackedGRU(IN, D, L, batch_first=True)(torch.randn(B, T, IN))
    assert out.shape == (B, T, D) and h.shape == (L, B, D)
    for activation in ("tanh", "relu"):
        net = DeepFeedForward(IN, D, 6, activation=activation)
        y, state = net(torch.randn(B, IN))
        assert y.shape == (B, D) and state is None
        assert count_parameters(net) == IN * D + D + 5 * (D * D + D)
    assert (DeepFeedForward(IN, D, 3, activation="relu")(torch.randn(B, IN))[0] >= 0).all()
    with pytest.raises(ValueError, match="activation must be one of 'tanh', 'relu'"):
        DeepFeedForward(IN, D, 2, activation="gelu")
    with pytest.raises(ValueError, match="init must be one of 'standard', 'pytorch', 'xavier'"):
        DeepFeedForward(IN, D, 2, init="orthogonal")


@pytest.mark.parametrize(
    ("activation", "init"),
    [("tanh", "standard"), ("relu", "standard"), ("tanh", "xavier"), ("relu", "pytorch")],
)
def test_feed_forward_init_and_residual_keep_the_signal_through_depth(activation, init):
    """The family's standard init keeps a deep net's activations at unit scale; PyTorch's
    default shrinks them (the reason the parity study states its initialisation)."""
    torch.manual_seed(0)
    x = torch.randn(4096, 64)
    net = DeepFeedForward(64, 64, 16, activation=activation, init=init)
    scale = net(x)[0].pow(2).mean().sqrt().item()
    if init == "pytorch":
        assert scale < 0.2
    else:
        assert 0.4 < scale < 3.0
        assert all(float(layer.bias.abs().sum()) == 0.0 for layer in net.layers)


def test_a_residual_feed_forward_net_adds_each_layers_input_back():
    torch.manual_seed(0)
    plain = DeepFeedForward(IN, D, 3, activation="relu")
    residual = DeepFeedForward(IN, D, 3, activation="relu", residual=True)
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(B, IN)
    h1 = torch.relu(plain.layers[0](x))
    h2 = h1 + torch.relu(plain.layers[1](h1))
    expected = h2 + torch.relu(plain.layers[2](h2))
    torch.testing.assert_close(residual(x)[0], expected)
    assert count_parameters(residual) == count_parameters(plain)


def naive_mdlstm(x, linear, d):
    """Per-cell 2D MDLSTM straight from Graves et al.: memories of both dimensions summed."""
    batch, height, width, _ = x.shape
    h = torch.zeros(batch, height + 1, width + 1, d, dtype=x.dtype)
    m = torch.zeros_like(h)
    for i in range(height):
        for j in range(width):
            z = torch.cat([x[:, i, j], h[:, i, j + 1], h[:, i + 1, j]], -1) @ linear.weight.T
            z = z + linear.bias
            gi, f1, f2, g, o = (z[:, k * d : (k + 1) * d] for k in range(5))
            cell = (
                torch.sigmoid(f1) * m[:, i, j + 1]
                + torch.sigmoid(f2) * m[:, i + 1, j]
                + torch.sigmoid(gi) * torch.tanh(g)
            )
            m = m.clone()
            h = h.clone()
            m[:, i + 1, j + 1] = cell
            h[:, i + 1, j + 1] = torch.sigmoid(o) * torch.tanh(cell)
    return h[:, 1:, 1:]


def test_mdlstm2d_matches_a_per_cell_loop():
    torch.manual_seed(0)
    net = MDLSTM2d(IN, D, 2).double()
    x = torch.randn(B, 3, 4, IN, dtype=torch.float64)
    out, state = net(x)
    ref = naive_mdlstm(naive_mdlstm(x, net.gates[0], D), net.gates[1], D)
    torch.testing.assert_close(out, ref)
    assert state is None and out.shape == (B, 3, 4, D)


@pytest.mark.parametrize("cls", [StackedCellLSTM, StackedGRU, DeepFeedForward, MDLSTM2d])
def test_baselines_reject_bad_sizes(cls):
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        cls(IN, 0, 2)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        cls(IN, D, 0)

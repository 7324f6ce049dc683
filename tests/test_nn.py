"""`gridlstm.nn`: the grid2d fast path against the independent naive reference."""

from __future__ import annotations

import pytest
import torch

from gridlstm.nn import Grid2dLSTM, StackedLSTM, TokenSequenceModel, count_parameters
from tests.reference import naive_grid2d

# Distinct sizes everywhere: batch, time, layers, hidden, input.
B, T, L, D, IN = 3, 5, 4, 6, 7


def block_weights(grid: Grid2dLSTM) -> list[dict[str, torch.Tensor]]:
    """Re-express the module's parameters as full block matrices over [h_time; h_depth]."""
    blocks = []
    for time_lstm, depth_lstm in zip(grid.time, grid.depth, strict=True):
        blocks.append(
            {
                "W_time": torch.cat([time_lstm.weight_hh_l0, time_lstm.weight_ih_l0], dim=1),
                "b_time": time_lstm.bias_ih_l0 + time_lstm.bias_hh_l0,
                "W_depth": depth_lstm.gates.weight,
                "b_depth": depth_lstm.gates.bias,
            }
        )
    return blocks


def make(tied: bool, priority: str, seed: int = 0) -> Grid2dLSTM:
    torch.manual_seed(seed)
    return Grid2dLSTM(IN, D, L, tied=tied, priority=priority).double()


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("priority", ["depth", "none"])
def test_fast_path_matches_naive_reference_outputs_and_gradients(tied: bool, priority: str):
    grid = make(tied, priority)
    torch.manual_seed(1)
    x = torch.randn(B, T, IN, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(L, B, D, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(L, B, D, dtype=torch.float64, requires_grad=True)

    out, (h_n, c_n) = grid(x, (h0, c0))
    bottom = grid.input_proj(x)
    ref_out, ref_h, ref_c = naive_grid2d(bottom, block_weights(grid), L, priority, h0, c0)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h_n, ref_h)
    torch.testing.assert_close(c_n, ref_c)

    weights = torch.randn_like(out)
    inputs = [x, h0, c0, *grid.parameters()]
    fast = torch.autograd.grad((out * weights).sum() + h_n.sum() + c_n.sum(), inputs)
    ref = torch.autograd.grad((ref_out * weights).sum() + ref_h.sum() + ref_c.sum(), inputs)
    for got, want in zip(fast, ref, strict=True):
        torch.testing.assert_close(got, want)


def test_priority_changes_the_output():
    """Depth priority feeds the new time hidden vector to the depth LSTM: a real difference."""
    x = torch.randn(B, T, IN, dtype=torch.float64)
    out_depth, _ = make(False, "depth")(x)
    out_none, _ = make(False, "none")(x)
    assert not torch.allclose(out_depth, out_none)


def test_state_carries_across_chunks_like_one_long_sequence():
    grid = make(False, "depth")
    x = torch.randn(B, T + 4, IN, dtype=torch.float64)
    full, (h_full, c_full) = grid(x)
    first, state = grid(x[:, :T])
    second, (h_n, c_n) = grid(x[:, T:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)
    torch.testing.assert_close(h_n, h_full)
    torch.testing.assert_close(c_n, c_full)


def test_batch_first_false_is_a_transpose():
    grid = make(False, "depth")
    x = torch.randn(B, T, IN, dtype=torch.float64)
    out, _ = grid(x)
    grid.batch_first = False
    out_tbf, _ = grid(x.transpose(0, 1))
    torch.testing.assert_close(out_tbf.transpose(0, 1), out)


def test_tied_shares_one_block_and_counts_parameters():
    d = D
    block = (4 * d * d + 4 * d * d + 8 * d) + (4 * d * 2 * d + 4 * d)  # time LSTM + depth LSTM
    projection = IN * d + d
    assert count_parameters(make(True, "depth")) == projection + block
    assert count_parameters(make(False, "depth")) == projection + L * block
    # Tied layers really are one block: perturbing it changes every layer.
    tied = make(True, "depth")
    assert len(tied.time) == 1 and len(tied.depth) == 1


def test_forget_bias_initialisation():
    grid = Grid2dLSTM(D, D, 2, forget_bias=2.5)
    total = grid.time[0].bias_ih_l0 + grid.time[0].bias_hh_l0
    assert torch.all(total[D : 2 * D] == 2.5)
    assert torch.all(grid.depth[1].gates.bias[D : 2 * D] == 2.5)
    stacked = StackedLSTM(IN, D, 2, forget_bias=2.5)
    assert torch.all((stacked.bias_ih_l1 + stacked.bias_hh_l1)[D : 2 * D] == 2.5)


def test_stacked_lstm_is_nn_lstm():
    torch.manual_seed(0)
    stacked = StackedLSTM(IN, D, L)
    reference = torch.nn.LSTM(IN, D, L, batch_first=True)
    reference.load_state_dict(stacked.state_dict())
    x = torch.randn(B, T, IN)
    torch.testing.assert_close(stacked(x)[0], reference(x)[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 0}, "hidden_size must be an integer >= 1"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1"),
        ({"input_size": -3}, "input_size must be an integer >= 1"),
        ({"priority": "time"}, "priority must be one of 'depth', 'none'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_option(kwargs, message):
    args = {"input_size": IN, "hidden_size": D, "num_layers": L, **kwargs}
    with pytest.raises(ValueError, match=message):
        Grid2dLSTM(**args)
    if "priority" not in kwargs:
        with pytest.raises(ValueError, match=message):
            StackedLSTM(**args)


def test_wrong_state_shape_is_rejected():
    grid = make(False, "depth")
    x = torch.randn(B, T, IN, dtype=torch.float64)
    bad = torch.zeros(L - 1, B, D, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(4, 3, 6\)"):
        grid(x, (bad, bad))
    with pytest.raises(ValueError, match="input_size=7"):
        grid(torch.randn(B, T, IN + 1, dtype=torch.float64))


def test_greedy_continue_feeds_back_its_own_predictions():
    torch.manual_seed(0)
    model = TokenSequenceModel(11, Grid2dLSTM(8, 8, 2)).eval()
    prompt = torch.randint(0, 11, (4, 6))
    generated = model.greedy_continue(prompt, 5)
    # Same result by re-running the whole growing sequence from scratch at every step.
    sequence = prompt
    for _ in range(5):
        next_token = model(sequence)[0][:, -1].argmax(-1, keepdim=True)
        sequence = torch.cat([sequence, next_token], 1)
    torch.testing.assert_close(generated, sequence[:, 6:])

"""`gridlstm.nn`: Grid2dLSTM conveniences, the stacked baseline, the token model.

The grid math itself is checked against the independent reference in test_grid.py."""

from __future__ import annotations

import pytest
import torch

from gridlstm.nn import Grid2dLSTM, StackedLSTM, TokenSequenceModel

# Distinct sizes everywhere: batch, time, layers, hidden, input.
B, T, L, D, IN = 3, 5, 4, 6, 7


def make(tied: bool, priority: str, seed: int = 0) -> Grid2dLSTM:
    torch.manual_seed(seed)
    return Grid2dLSTM(IN, D, L, tied=tied, priority=priority, batch_first=True).double()


@pytest.mark.parametrize(("name", "dims"), [("depth", [1]), ("none", []), ("time", [0])])
def test_grid2d_priority_names_map_to_dimensions(name, dims):
    grid = make(False, name)
    assert grid.priority == dims and grid.grid_dims == 1
    assert grid.backend == ("scan" if name == "time" else "fast")  # untied time priority


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


def test_forget_bias_initialisation():
    grid = Grid2dLSTM(D, D, 2, forget_bias=2.5, batch_first=True)
    for block in grid.blocks:
        for transform in block.transforms:
            assert torch.all(transform.bias[D : 2 * D] == 2.5)
            assert torch.all(transform.bias[:D] == 0) and torch.all(transform.bias[2 * D :] == 0)
    stacked = StackedLSTM(IN, D, 2, forget_bias=2.5, batch_first=True)
    assert torch.all((stacked.bias_ih_l1 + stacked.bias_hh_l1)[D : 2 * D] == 2.5)


def test_stacked_lstm_forget_bias_none_keeps_nn_lstm_initialisation():
    """forget_bias=None: every parameter as `torch.nn.LSTM` draws it from the same seed."""
    torch.manual_seed(3)
    stacked = StackedLSTM(IN, D, 2, forget_bias=None, batch_first=True)
    torch.manual_seed(3)
    reference = torch.nn.LSTM(IN, D, 2, batch_first=True)
    for name, param in reference.named_parameters():
        torch.testing.assert_close(getattr(stacked, name), param, rtol=0, atol=0)
    assert stacked.bias_ih_l0[D : 2 * D].abs().max() <= D**-0.5  # uniform, not 1.0


def test_stacked_lstm_is_nn_lstm():
    torch.manual_seed(0)
    stacked = StackedLSTM(IN, D, L, batch_first=True)
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
        ({"priority": "width"}, "priority must be one of 'depth', 'none', 'time'"),
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
    with pytest.raises(
        ValueError, match=r"state h of grid dimension 0 must have shape \(4, 3, 6\)"
    ):
        grid(x, (bad, bad))
    with pytest.raises(ValueError, match="input_size = 7"):
        grid(torch.randn(B, T, IN + 1, dtype=torch.float64))


def test_greedy_continue_feeds_back_its_own_predictions():
    torch.manual_seed(0)
    model = TokenSequenceModel(11, Grid2dLSTM(8, 8, 2, batch_first=True)).eval()
    prompt = torch.randint(0, 11, (4, 6))
    generated = model.greedy_continue(prompt, 5)
    # Same result by re-running the whole growing sequence from scratch at every step.
    sequence = prompt
    for _ in range(5):
        next_token = model(sequence)[0][:, -1].argmax(-1, keepdim=True)
        sequence = torch.cat([sequence, next_token], 1)
    torch.testing.assert_close(generated, sequence[:, 6:])


def test_token_model_refuses_a_backbone_that_is_not_over_one_sequence_dimension():
    from gridlstm.nn import DeepFeedForward, GridLSTM

    for backbone in (DeepFeedForward(8, 8), GridLSTM(8, 8, 2, grid_dims=0)):
        with pytest.raises(ValueError, match="is not a sequence model"):
            TokenSequenceModel(11, backbone)


def test_token_model_refuses_a_time_major_backbone():
    with pytest.raises(ValueError, match="must be built with batch_first=True"):
        TokenSequenceModel(11, Grid2dLSTM(8, 8, 2))  # nn.LSTM's default: (T, B, F)
    with pytest.raises(ValueError, match=r"\(LSTM\) must be built with batch_first=True"):
        TokenSequenceModel(11, torch.nn.LSTM(8, 8))


def test_token_model_reads_every_output_side():
    grid = Grid2dLSTM(8, 6, 2, output_dims=[0, "depth"], batch_first=True)
    model = TokenSequenceModel(11, grid)
    logits, _ = model(torch.randint(0, 11, (2, 5)))
    assert grid.output_size == 12 and logits.shape == (2, 5, 11)


def test_priority_takes_the_same_forms_in_both_classes():
    """Names ("depth", "none", "time") and lists of dimensions, in GridLSTM and Grid2dLSTM."""
    import gridlstm
    from gridlstm.nn import Grid2dLSTM, GridLSTM

    x = torch.randn(2, 5, 3)
    for name, listed in (("depth", ["depth"]), ("none", []), ("time", [0])):
        outputs = []
        for make in (
            lambda p: GridLSTM(3, 4, 2, priority=p, batch_first=True),
            lambda p: Grid2dLSTM(3, 4, 2, priority=p, batch_first=True),
        ):
            for priority in (name, listed):
                torch.manual_seed(0)
                net = make(priority)
                assert net.priority == net._dims("priority", listed, allow_empty=True)
                outputs.append(net(x)[0])
        for out in outputs[1:]:
            torch.testing.assert_close(out, outputs[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="priority must be one of 'depth', 'none' or a list"):
        GridLSTM(3, 4, 1, grid_dims=2, priority="time")  # which of two grid dimensions?
    assert GridLSTM(3, 4, 1, grid_dims=2, priority=1).priority == [1]
    assert gridlstm.__version__ == __import__("importlib.metadata").metadata.version("gridlstm")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"bidirectional": True}, "bidirectional=True is not supported"),
        ({"proj_size": 2}, "proj_size=2 is not supported"),
    ],
)
def test_nn_lstm_options_a_grid_lstm_lacks_are_refused(option, message):
    from gridlstm.nn import Grid2dLSTM, GridLSTM

    for cls in (GridLSTM, Grid2dLSTM):
        with pytest.raises(ValueError, match=message):
            cls(3, 4, **option)
        cls(3, 4, bidirectional=False, proj_size=0)  # nn.LSTM's defaults are accepted


def test_decoding_is_exported():
    from gridlstm import nn as gnn
    from gridlstm.nn.models import decoding

    assert gnn.greedy is decoding.greedy and gnn.beam_search is decoding.beam_search


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_sequence_input_matches_each_sequence_run_alone(batch_first, enforce_sorted):
    """nn.LSTM's packed convention: packed in, packed out with the same batch_sizes and
    indices, state in the batch's original order; each sequence as if run on its own."""
    from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

    from gridlstm.nn import GridLSTM

    torch.manual_seed(0)
    net = GridLSTM(3, 5, 2, 1, batch_first=batch_first).double()
    steps = [6, 4, 1] if enforce_sorted else [2, 6, 4]
    seqs = [torch.randn(n, 3, dtype=torch.float64, requires_grad=True) for n in steps]
    packed = pack_sequence(seqs, enforce_sorted=enforce_sorted)
    out, (h, m) = net(packed)
    reference = torch.nn.LSTM(3, 5, 2, batch_first=batch_first).double()(packed)[0]
    assert isinstance(out, type(packed))
    assert torch.equal(out.batch_sizes, reference.batch_sizes)
    for mine, theirs in (
        (out.sorted_indices, reference.sorted_indices),
        (out.unsorted_indices, reference.unsorted_indices),
    ):
        assert (mine is None and theirs is None) or torch.equal(mine, theirs)
    padded, lengths = pad_packed_sequence(out, batch_first=True)
    assert lengths.tolist() == steps
    for row, seq in enumerate(seqs):
        alone, (h_alone, m_alone) = net(seq)  # unbatched: (T, F)
        torch.testing.assert_close(padded[row, : len(seq)], alone)
        torch.testing.assert_close(h[:, row], h_alone)
        torch.testing.assert_close(m[:, row], m_alone)
    out.data.sum().backward()
    assert all(seq.grad is not None and seq.grad.abs().sum() > 0 for seq in seqs)


def test_packed_sequence_refusals():
    from torch.nn.utils.rnn import pack_sequence

    from gridlstm.nn import GridLSTM

    packed = pack_sequence([torch.randn(3, 4), torch.randn(2, 4)])
    with pytest.raises(ValueError, match="carries its lengths"):
        GridLSTM(4, 5)(packed, lengths=torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="grid_dims=1 only"):
        GridLSTM(4, 5, grid_dims=2)(packed)


def test_embedding_std_sets_the_scale_of_the_vector_entering_the_bottom():
    from gridlstm.nn import StackedLSTM, TokenSequenceModel

    torch.manual_seed(0)
    backbone = StackedLSTM(256, 8, 1, batch_first=True)
    default = TokenSequenceModel(50, backbone).embedding.weight
    small = TokenSequenceModel(50, backbone, embedding_std=0.05).embedding.weight
    assert abs(default.std().item() - 1.0) < 0.05
    assert abs(small.std().item() - 0.05) < 0.005
    with pytest.raises(ValueError, match="embedding_std must be > 0"):
        TokenSequenceModel(50, backbone, embedding_std=0.0)


def test_hx_is_nn_lstms_keyword_for_the_state():
    net = make(tied=True, priority="depth")
    x = torch.randn(B, T, IN, dtype=torch.float64)
    _, state = net(x)
    assert torch.equal(net(x, hx=state)[0], net(x, state)[0])
    assert not torch.equal(net(x, hx=state)[0], net(x)[0])  # the keyword is not ignored
    with pytest.raises(TypeError, match="both state and hx"):
        net(x, state, hx=state)


def test_an_input_of_another_dtype_gets_nn_lstms_message():
    """As nn.LSTM: a ValueError naming both dtypes and the two fixes, before any kernel runs
    (a backend would otherwise fail with its own words); autocast is left to cast."""
    net = make(tied=True, priority="depth").float()
    reference = torch.nn.LSTM(IN, D)
    x = torch.randn(B, T, IN, dtype=torch.float64)
    with pytest.raises(ValueError) as theirs:
        reference(x)
    with pytest.raises(ValueError) as ours:
        net(x)
    assert str(ours.value) == str(theirs.value).replace("RNN input", "GridLSTM input")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x.to(torch.bfloat16))
    h = torch.zeros(L, B, D)
    assert net(x.float(), hx=(h, h))[0].dtype == torch.float32

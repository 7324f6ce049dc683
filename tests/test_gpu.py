"""GPU paths (marked ``gpu``; deselected by default, run with ``python -m pytest -m gpu``)."""

from __future__ import annotations

import json

import pytest
import torch

from gridlstm.nn import GridLSTM, dispatch
from gridlstm.nn.backends import fast as fast_backend
from gridlstm.nn.backends import scan as scan_backend
from tests.conftest import TINY
from tests.test_grid import reference_forward

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [(1, {}), (1, {"priority": []}), (1, {"peephole": True}), (2, {}), (2, {"tied": True})],
)
def test_every_backend_on_gpu_matches_the_float64_reference(dtype, grid_dims, options):
    torch.manual_seed(0)
    net = GridLSTM(
        5, 4, 3, grid_dims, batch_first=True, **options
    ).double()  # test_grid's IN=5, D=4, L=3
    sizes = [9] if grid_dims == 1 else [4, 3]
    x = torch.randn(6, *sizes, 5, dtype=torch.float64)
    zeros = [
        (torch.zeros(3, 6, *sizes[:k], *sizes[k + 1 :], 4, dtype=torch.float64),) * 2
        for k in range(grid_dims)
    ]
    with torch.no_grad():
        reference, _ = reference_forward(net, x, zeros)
    gpu = net.to("cuda", dtype)
    backends = ["naive", "hyperplane"] + (["scan"] if scan_backend.blocker(gpu) is None else [])
    backends += ["fast"] if fast_backend.blocker(gpu) is None else []
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    for backend in backends:
        gpu.backend = backend
        out, _ = gpu(x.to("cuda", dtype))
        out.float().sum().backward()  # cuDNN backward needs the kernel run in train mode
        torch.testing.assert_close(out.double().cpu(), reference, atol=tolerance, rtol=tolerance)


def test_the_fast_path_hands_cudnn_one_weight_buffer(monkeypatch):
    """No "weights are not part of single contiguous chunk of memory" warning: cuDNN takes
    the packed buffer of `kernel_weights` as its weight layout (forward and backward).
    The warning is silenced in use (`quiet_relayout`), so not here."""
    import contextlib
    import warnings

    from gridlstm.nn.kernels import lstm

    monkeypatch.setattr(lstm, "quiet_relayout", contextlib.nullcontext)
    torch.manual_seed(0)
    net = GridLSTM(16, 32, 2, 1, batch_first=True, backend="fast").cuda()
    x = torch.randn(4, 10, 16, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net(x)[0].sum().backward()
    assert not [w for w in caught if "contiguous chunk" in str(w.message)]


@pytest.mark.parametrize(
    ("grid_dims", "options"),
    [(1, {"backend": "scan", "priority": [0]}), (2, {"backend": "hyperplane"})],
)
def test_compiled_steps_with_cuda_graphs_match_eager(grid_dims, options):
    torch.manual_seed(0)
    eager = GridLSTM(3, 8, 2, grid_dims, batch_first=True, **options).cuda()
    graphs = GridLSTM(3, 8, 2, grid_dims, batch_first=True, compile="reduce-overhead", **options)
    graphs = graphs.cuda()
    graphs.load_state_dict(eager.state_dict())
    x = torch.randn(4, *([7] if grid_dims == 1 else [3, 4]), 3, device="cuda")
    for _ in range(3):  # recording, then replays
        got = graphs(x)[0]
        got.sum().backward()
    torch.testing.assert_close(got, eager(x)[0], rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # evaluation: compiled steps without CUDA graphs
        torch.testing.assert_close(graphs(x)[0], eager(x)[0], rtol=1e-4, atol=1e-5)


def test_gpu_hardware_runs_in_bf16(cli):
    result = cli(*TINY, "hardware=gpu", "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    assert json.loads(path.read_text())["global_step"] == 6


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_multirun_on_gpus_trains_each_job_once(cli):
    result = cli(
        "-m",
        *TINY,
        "hardware=ddp",
        "hardware.devices=2",
        "logger=none",
        "model.net.hidden_size=12,16",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(cli.cwd.glob("multirun/**/metrics.json"))) == 2


@pytest.mark.parametrize("task", ["text", "mnist"])
def test_language_model_and_mnist_run_on_gpu_in_bf16(cli, tmp_path, task):
    from tests.conftest import task_overrides

    model = "grid2d" if task == "text" else "grid3d"
    result = cli(
        f"task={task}",
        f"model={model}",
        *task_overrides(task, tmp_path),
        "hardware=gpu",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    main = "test/bpc" if task == "text" else "test/error"
    assert metrics[main] == metrics[main]  # not NaN


def test_grid3d_on_gpu_matches_cpu():
    from gridlstm.nn import Grid3dImageEncoder

    torch.manual_seed(0)
    net = Grid3dImageEncoder(28, 1, 4, 16, 2, directions=4)
    images = torch.randn(5, 1, 28, 28)
    expected, _ = net(images)
    got, _ = net.to("cuda")(images.to("cuda"))
    torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=1e-4)


def test_reencoder_on_gpu_matches_cpu_and_decodes_incrementally():
    from gridlstm.nn import Reencoder
    from gridlstm.nn.models.decoding import beam_search, greedy

    torch.manual_seed(0)
    net = Reencoder(50, 60, hidden_size=16, num_layers=2, direction="both").eval()
    src = torch.randint(3, 50, (4, 7))
    lengths = torch.tensor([7, 5, 3, 1])
    tgt = torch.randint(3, 60, (4, 6))
    expected = net(src, lengths, tgt)
    gpu = net.to("cuda")
    got = gpu(src.cuda(), lengths.cuda(), tgt.cuda())
    torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=1e-4)
    state, steps = gpu.start(src.cuda(), lengths.cuda()), []
    for j in range(tgt.shape[1]):
        logits, state = gpu.step(state, tgt[:, j].cuda())
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), got, atol=1e-4, rtol=1e-4)
    args = (src.cuda(), lengths.cuda(), 1, 2, 8)
    assert beam_search(gpu, *args, beam=1) == greedy(gpu, *args)


def test_translation_runs_on_gpu_in_bf16(cli, tmp_path):
    from tests.conftest import task_overrides

    result = cli(
        "task=translation",
        "model=reencoder",
        *task_overrides("translation", tmp_path),
        "hardware=gpu",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    assert 0 <= metrics["test/bleu"] <= 100 and metrics["val/loss"] == metrics["val/loss"]


def test_sigterm_then_resume_on_gpu_matches_the_uninterrupted_run(cli):
    """The #12 resume contract on CUDA: RNG (CPU and CUDA), optimizer and data position."""
    from tests.test_resume import ADDITION, final_numbers, interrupted_then_resumed, metrics

    args = [*ADDITION, "hardware=gpu", "hardware.precision=32-true", "trainer.deterministic=true"]
    straight = cli(*args, f"hydra.run.dir={cli.cwd / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = interrupted_then_resumed(cli, args, step=4)
    assert final_numbers(metrics(run)) == final_numbers(metrics(cli.cwd / "straight"))


def test_divergence_on_gpu_stops_with_exit_code_3_and_finite_checkpoints(cli):
    from tests.test_resume import ADDITION, metrics

    run = cli.cwd / "nan"
    result = cli(
        *ADDITION,
        "hardware=gpu",
        f"hydra.run.dir={run}",
        "+callbacks.poison._target_=tests.signals.InfiniteLearningRateAtStep",
        "+callbacks.poison.step=8",
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert metrics(run)["status"] == "diverged"
    for path in (run / "checkpoints").glob("*.ckpt"):
        weights = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        tensors = [w for w in weights.values() if torch.is_tensor(w)]  # not a grid's options
        assert all(torch.isfinite(w).all() for w in tensors), path.name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("model", ["grid_fast", "stacked_lstm", "stacked_gru", "row_lstm"])
def test_recurrent_kernels_under_autocast_run_in_the_asked_dtype(model, dtype):
    """Under autocast cuDNN runs in the dtype autocast asks for (PyTorch's own cuDNN-RNN
    wrapper would run bf16 in float16), with no fallback and no warning, and the result
    stays within the half-precision distance of the float32 run."""
    import warnings

    from gridlstm.nn import RowLSTM, StackedGRU, StackedLSTM

    torch.manual_seed(0)
    x = torch.randn(4, 10, 16, device="cuda")
    net = {
        "grid_fast": lambda: GridLSTM(16, 32, 2, 1, batch_first=True, backend="fast"),
        "stacked_lstm": lambda: StackedLSTM(16, 32, 2, batch_first=True),
        "stacked_gru": lambda: StackedGRU(16, 32, 2, batch_first=True),
        "row_lstm": lambda: RowLSTM((10, 16), 1, 32, 2),
    }[model]().cuda()
    if model == "row_lstm":
        x = x[:, None]  # (B, C, H, W) images
    expected, _ = net(x)
    with warnings.catch_warnings(record=True) as caught, torch.autocast("cuda", dtype=dtype):
        warnings.simplefilter("always")
        got, _ = net(x)
        got.float().sum().backward()
    assert not [str(w.message) for w in caught if "nn" in w.filename or "torch" in w.filename]
    assert got.dtype == dtype
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    torch.testing.assert_close(got.float(), expected, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize(
    ("task", "model", "extra"),
    [
        ("mnist", "grid3d", ["model.net.compile=reduce-overhead"]),  # compiled steps, bf16
        ("addition", "grid2d", ["hardware.precision=16-mixed"]),  # fp16 with a grad scaler
    ],
)
def test_compiled_and_fp16_runs_train_on_gpu(cli, tmp_path, task, model, extra):
    from tests.conftest import task_overrides

    result = cli(
        f"task={task}",
        f"model={model}",
        *task_overrides(task, tmp_path),
        "hardware=gpu",
        "logger=none",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = cli.cwd.glob("outputs/*/*/metrics.json")
    metrics = json.loads(path.read_text())
    main = "test/error" if task == "mnist" else "test/acc"
    assert metrics[main] == metrics[main]  # not NaN


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16-autocast"])
def test_hand_written_hyperplane_steps_agree_with_the_per_op_ones_on_gpu(autocast):
    """gridlstm.nn.kernels.handwritten on CUDA: outputs and weight gradients against
    the per-op steps in float32; under bf16 autocast, outputs (returned in bf16, as
    nn.LSTM's) within bf16 rounding."""
    import contextlib

    torch.manual_seed(0)
    net = GridLSTM(16, 32, 2, 2, backend="hyperplane").cuda()
    x = torch.randn(8, 7, 7, 16, device="cuda")

    def run(per_op: bool, bf16: bool):
        with (
            dispatch.without("handwritten", "fused") if per_op else contextlib.nullcontext(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16),
        ):
            out, final = net(x)
        loss = out.float().square().sum() + sum(t.float().sum() for p in final for t in p)
        return out, torch.autograd.grad(loss, list(net.parameters()))

    expected, expected_grads = run(per_op=True, bf16=False)
    got, grads = run(per_op=False, bf16=autocast)
    assert got.dtype == (torch.bfloat16 if autocast else torch.float32)
    tolerance = 3e-2 if autocast else 1e-4
    torch.testing.assert_close(got.float(), expected, atol=tolerance, rtol=tolerance)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, atol=tolerance * e.abs().max().item(), rtol=tolerance)


def fused_against_pytorch_steps(net, x, dtype, function, monkeypatch) -> int:
    """``net``'s output and gradients in ``dtype`` (a fused autograd ``function`` counted)
    against the PyTorch steps in float32, within 1e-4 (16-bit: 5e-2, gradients scaled by
    their largest entry); returns how often ``function`` ran."""
    from gridlstm.nn.kernels import fused

    def run(module, inputs):
        out, final = module(inputs)
        leaves = torch.utils._pytree.tree_leaves(final)
        loss = out.float().square().mean() + sum(t.float().mean() for t in leaves)
        return out.float(), torch.autograd.grad(loss, list(module.parameters()))

    with dispatch.without("fused"):
        expected, expected_grads = run(net, x)
    assert fused.probe(x.device, dtype)  # first, so its own launches are not counted below
    calls = []
    original = function.apply
    monkeypatch.setattr(function, "apply", lambda *args: calls.append(1) or original(*args))
    got, grads = run(net.to(dtype), x.to(dtype))
    monkeypatch.undo()
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)
    for g, e in zip(grads, expected_grads, strict=True):
        scale = e.abs().max().item() + 1e-6
        torch.testing.assert_close(g.float(), e, atol=tolerance * scale, rtol=tolerance)
    return len(calls)


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.float32, {}),
        (torch.float32, {"tied": True, "output_form": "paper"}),
        (torch.bfloat16, {}),
        (torch.float16, {"tied": True}),
    ],
    ids=["float32", "float32-tied-paper", "bf16", "fp16-tied"],
)
def test_fused_triton_step_at_real_sizes_matches_the_pytorch_steps(dtype, options, monkeypatch):
    """gridlstm.nn.kernels.fused on CUDA at the MNIST preset's sizes (14 x 14 patches, d 64,
    3 layers, batch 32): outputs and gradients against the PyTorch steps in float32 (16-bit
    runs against the float32 PyTorch steps, within 16-bit rounding), and the fused step ran."""
    from gridlstm.nn.kernels.fused import steps

    torch.manual_seed(0)
    net = GridLSTM(16, 64, 3, 2, backend="hyperplane", **options).cuda()
    x = torch.randn(32, 14, 14, 16, device="cuda")
    calls = fused_against_pytorch_steps(net, x, dtype, steps.FusedSteps, monkeypatch)
    assert calls, "the fused step did not run"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_scan_recurrence_on_gpu_matches_the_pytorch_steps(dtype, monkeypatch):
    """The scan's time recurrence on the fused step (paper form, d 128, T 50, B 16), against
    the per-op loop in float32; bf16 within its rounding."""
    from gridlstm.nn.kernels.fused import scan

    torch.manual_seed(0)
    net = GridLSTM(32, 128, 2, 1, batch_first=True, backend="scan", output_form="paper").cuda()
    x = torch.randn(16, 50, 32, device="cuda")
    calls = fused_against_pytorch_steps(net, x, dtype, scan.FusedRecurrence, monkeypatch)
    assert calls == 2  # one per layer


@pytest.mark.parametrize("grid_dims", [1, 2])
def test_cuda_graphs_replay_the_eager_forward_and_backward(grid_dims):
    """gridlstm.nn.graphs on CUDA: three training steps with graphs (recording, then replays)
    give the eager steps' losses and weights, with a carried state for the 2-LSTM."""
    from gridlstm.nn import graphs

    torch.manual_seed(0)
    eager = GridLSTM(8, 32, 2, grid_dims, batch_first=True).cuda()
    graphed = GridLSTM(8, 32, 2, grid_dims, batch_first=True).cuda()
    graphed.load_state_dict(eager.state_dict())
    dispatcher = graphs.graphed(graphed)
    shape = (4, 20, 8) if grid_dims == 1 else (4, 6, 5, 8)
    batches = [torch.randn(*shape, device="cuda") for _ in range(3)]
    losses = []
    for net in (eager, graphed):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        state, seen = None, []
        for x in batches:
            out, final = net(x, state)
            loss = out.square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append(loss.item())
            if grid_dims == 1:
                state = tuple(t.detach() for t in final)
        losses.append(seen)
    assert len(dispatcher.graphs) == (2 if grid_dims == 1 else 1)
    torch.testing.assert_close(
        torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-4, atol=1e-6
    )
    for a, b in zip(graphed.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_cuda_graphs_train_the_addition_task(cli):
    result = cli(
        *TINY,
        "hardware=gpu",
        "hardware.precision=32-true",
        "hardware.cuda_graphs=true",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replay CUDA graphs" in result.stdout + result.stderr


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize(("grid_dims", "backend"), [(2, "hyperplane"), (1, "scan")])
def test_fused_steps_run_on_the_tensors_gpu_not_the_current_one(grid_dims, backend):
    """A model on cuda:1 while the current device is 0: the fused steps launch there (a
    launch on GPU 0 would read another device's memory) and match the PyTorch steps."""
    torch.manual_seed(0)
    options = {"output_form": "paper"} if backend == "scan" else {}
    net = GridLSTM(16, 32, 2, grid_dims, backend=backend, batch_first=True, **options)
    net = net.to("cuda:1")
    x = torch.randn(4, 6, 5, 16, device="cuda:1")[(slice(None), 0) if grid_dims == 1 else ...]
    torch.cuda.set_device(0)
    with dispatch.explain() as record:
        got = net(x)[0]
    assert ("scan" if backend == "scan" else "hyperplane", "fused", None) in record
    with dispatch.without("fused"):
        expected = net(x)[0]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

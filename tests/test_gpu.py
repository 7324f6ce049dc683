"""GPU paths (marked ``gpu``; deselected by default, run with ``python -m pytest -m gpu``)."""

from __future__ import annotations

import json

import pytest
import torch

from gridlstm.nn import Grid2dLSTM
from tests.conftest import TINY
from tests.test_grid import reference_forward

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("priority", ["depth", "none"])
def test_cudnn_fast_path_matches_the_float64_reference(dtype, priority):
    torch.manual_seed(0)
    grid = Grid2dLSTM(5, 4, 3, priority=priority).double()  # test_grid's sizes: IN=5, D=4, L=3
    x = torch.randn(6, 17, 5, dtype=torch.float64)
    zeros = torch.zeros(3, 6, 4, dtype=torch.float64)
    with torch.no_grad():
        reference, _ = reference_forward(grid, x, [(zeros, zeros)])
        gpu = grid.to("cuda", dtype)
        assert gpu.backend == "fast"
        with torch.backends.cudnn.flags(enabled=True):
            out, _ = gpu(x.to("cuda", dtype))
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.double().cpu(), reference, atol=tolerance, rtol=tolerance)


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

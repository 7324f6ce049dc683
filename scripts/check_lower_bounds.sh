#!/usr/bin/env bash
# Install the lowest versions pyproject.toml allows (torch, torchvision, lightning, hydra-core,
# omegaconf) into a fresh virtual environment and run a smoke test: the library against its
# float64 reference, one training run, and an interrupted-and-resumed run.
# Not part of CI (it downloads a full torch); run it when a lower bound changes:
#   scripts/check_lower_bounds.sh [/tmp/gridlstm-lower]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/gridlstm-lower}"
rm -rf "$venv"
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet -e ".[dev]" "torch==2.6.0" "torchvision==0.21.0" "lightning==2.6.0" \
    "hydra-core==1.3.6" "omegaconf==2.3.0"
python -c "import torch, lightning, hydra; print('torch', torch.__version__, \
'lightning', lightning.__version__, 'hydra', hydra.__version__)"
# The native CPU steps build against this torch, or the one-line fallback says why.
python -m gridlstm.nn.kernels.native || true
python -m pytest -q -p no:cacheprovider tests/test_grid.py tests/test_nn.py tests/test_native.py \
    "tests/test_resume.py::test_sigterm_mid_epoch_then_resume_matches_the_uninterrupted_run" \
    "tests/test_train_cli.py::test_single_run_writes_metrics_and_loadable_checkpoints"

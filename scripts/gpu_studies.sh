#!/usr/bin/env bash
# The GPU study queue. Runs the stages scripts/gpu_studies.yaml names (the GPU-sized stages
# of the claims studies) side by side on one GPU within a deadline, each job preemption-safe
# (resume=auto in multirun/gpu_studies/<study>/<job>), and copies tables and metrics to
# multirun/studies/<claim>/gpu/ (results=docs/claims publishes them beside the claims pages,
# and restores jobs committed there). Run it again in a later GPU allocation to continue.
#   scripts/gpu_studies.sh [--dry-run] [minutes=40] [jobs=16]
#       [only=addition_depth_paper15,parity_paper]
# Data: MNIST IDX files under $GRIDLSTM_DATA_DIR/mnist/MNIST/raw; the Tatoeba pairs file in
# $GRIDLSTM_TRANSLATION_FILE. A study whose data is missing is skipped with one line.
# --dry-run: every job for a few steps at tiny sizes on the CPU, results under
# multirun/gpu_studies/dry_run and multirun/studies/<claim>/cpu_dry_run/ (or results=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
dry=false
cluster=false
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=true; args+=("dry_run=true") ;;
        launcher=local) args+=("$arg") ;;
        launcher=*) cluster=true; args+=("$arg") ;;
        -h|--help) exec python -m gridlstm.queue --help ;;
        *) args+=("$arg") ;;
    esac
done
if [[ "$dry" == false && "$cluster" == false ]] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_studies.sh: no CUDA device here; run on a GPU machine, or --dry-run on the CPU" >&2
    exit 2
fi
export WANDB_MODE="${WANDB_MODE:-offline}"
exec python -m gridlstm.queue studies=scripts/gpu_studies.yaml "${args[@]}"

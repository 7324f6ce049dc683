#!/usr/bin/env bash
# The GPU check: run it first whenever a GPU machine is available (about 20 minutes).
#   scripts/gpu_check.sh [--dry-run] [out=DIR] [minutes=8]
# 1. python -m pytest -m gpu                      -> pytest.txt
# 2. python -m gridlstm.bench device=cuda, float32 and bfloat16, each with the GPU targets of
#    the fused Triton step and CUDA graphs (gridlstm.analysis.targets)
#                                                 -> bench_float32.json, bench_bfloat16.json,
#                                                    targets.json
# 3. a short paper-size training run of every task (scripts/gpu_check.yaml, gridlstm.queue;
#    a task whose data is missing is skipped with one line: set GRIDLSTM_DATA_DIR for
#    mnist/ and enwik8/, GRIDLSTM_TRANSLATION_FILE for translation)
#                                                 -> smoke/<task>/gpu/
# Results go to docs/gpu_check/<device>/ (out=DIR to change), with check.json: the device,
# each step's exit status and duration, every gpu test's outcome, the targets, the smoke
# runs and a verdict (gridlstm.analysis.gpu_check). A failed step does not stop the others;
# the exit status is 1 if any failed.
# --dry-run: on the CPU, to check the script itself: skips step 1 (it needs CUDA, and says
# so), runs the bench and the smoke runs at tiny sizes; results in multirun/gpu_check_dry_run.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
out=""
minutes=8
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=true ;;
        out=*) out="${arg#out=}" ;;
        minutes=*) minutes="${arg#minutes=}" ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$arg'; valid: --dry-run, out=DIR, minutes=N" >&2
           exit 2 ;;
    esac
done
if [[ "$dry" == false ]] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check.sh: no CUDA device here; run on a GPU machine, or --dry-run on the CPU" >&2
    exit 2
fi
export WANDB_MODE="${WANDB_MODE:-offline}"
if [[ "$dry" == true ]]; then
    device="cpu (dry run)"
    out="${out:-multirun/gpu_check_dry_run}"
else
    device="$(python -c 'import torch; print(torch.cuda.get_device_name(0))')"
    slug="$(echo "$device" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9\n' '_' | sed 's/__*/_/g; s/_$//')"
    out="${out:-docs/gpu_check/$slug}"
fi
mkdir -p "$out"
echo "gpu_check: $device -> $out"
steps=()

step() {  # step NAME COMMAND...: run it, record status and seconds, never stop the script
    local name="$1" start status
    shift
    echo "== $name: $*"
    start=$(date +%s)
    set +e
    "$@"
    status=$?
    set -e
    steps+=("$name $status $(( $(date +%s) - start ))")
    echo "== $name: exit $status after $(( $(date +%s) - start )) s"
}

if [[ "$dry" == true ]]; then
    echo "== pytest -m gpu: skipped in the dry run (it needs a CUDA device)"
    steps+=("pytest_gpu skipped 0")
    tiny=(device=cpu hidden=16 layers=2 batch=2 length=8 grid_size=4 grid_hidden=8
          grid_batch=2 repeats=1 warmup=0 tr_batch=2 tr_src_len=3 tr_tgt_len=3 tr_params=150000)
    step bench_float32 python -m gridlstm.bench "${tiny[@]}" json="$out/bench_float32.json"
    step bench_bfloat16 python -m gridlstm.bench "${tiny[@]}" dtype=bfloat16 skip_translation=true \
        json="$out/bench_bfloat16.json"
    step smoke python -m gridlstm.queue studies=scripts/gpu_check.yaml dry_run=true \
        minutes="$minutes" jobs=2 runs="$out/smoke_runs" results="$out/smoke"
else
    step pytest_gpu bash -c "set -o pipefail; python -m pytest -m gpu -q -ra \
        --junitxml='$out/pytest.xml' 2>&1 | tee '$out/pytest.txt'"
    step bench_float32 python -m gridlstm.bench device=cuda repeats=15 json="$out/bench_float32.json"
    step bench_bfloat16 python -m gridlstm.bench device=cuda repeats=15 dtype=bfloat16 \
        json="$out/bench_bfloat16.json"
    step smoke python -m gridlstm.queue studies=scripts/gpu_check.yaml minutes="$minutes" \
        jobs=4 runs=multirun/gpu_check results="$out/smoke"
fi

python -m gridlstm.analysis.gpu_check "$out" "$device" "${steps[@]}"
for s in "${steps[@]}"; do
    read -r _ status _ <<< "$s"
    if [[ "$status" != 0 && "$status" != skipped ]]; then
        exit 1
    fi
done

#!/usr/bin/env bash
# The GPU check: run it first whenever a GPU machine is available (about 11 minutes: each
# step has a time limit, so a short allocation still ends with check.json).
#   scripts/gpu_check.sh [--dry-run] [out=DIR] [minutes=2 (dry run: 8)]
# 1. python -m pytest -m gpu (in parallel workers when pytest-xdist is installed; 240 s),
#    with step 4 beside it
#                                                 -> pytest.txt, pytest.xml
# 2. python -m gridlstm.bench device=cuda, float32 and bfloat16, each with the GPU targets of
#    the fused Triton step and CUDA graphs (gridlstm.benchmarks.targets; repeats=5, 80 s each)
#                                                 -> bench_float32.json, bench_bfloat16.json,
#                                                    targets.json
# 3. python -m gridlstm.bench steps at the GPU studies' shapes (scripts/gpu_studies.yaml): 15-digit
#    addition at batch 15 and 400 units, every family at depths 1-18; parity at k = 64,
#    batch 128 and its parameter budget, depths 1, 4, 25; MNIST's four models at the paper
#    preset (on the IDX files in $GRIDLSTM_DATA_DIR/mnist, else on random pixels of their
#    sizes); the enwik8 paper preset's two models (on $GRIDLSTM_DATA_DIR/enwik8/enwik8, else
#    on random bytes; 50 s each, MNIST 90 s, enwik8 60 s): the seconds per 100k samples that
#    the studies' GPU-hours and the presets' stated costs are planned from
#                                                 -> step_speed_addition15.json,
#                                                    step_speed_parity.json,
#                                                    step_speed_mnist.json,
#                                                    step_speed_enwik8.json (the rows
#                                                    check.json reads; .txt: each log)
# 4. a short paper-size training run of every task (scripts/gpu_check.yaml, gridlstm.queue,
#    a deadline of `minutes`, at least 2; beside step 1, before the timed steps; a task whose
#    data is missing is skipped with one line: set GRIDLSTM_DATA_DIR for mnist/ and enwik8/,
#    GRIDLSTM_TRANSLATION_FILE for translation)
#                                                 -> smoke/<task>/gpu/
# Results go to multirun/gpu_check/<device>/ (git-ignored; out=docs/gpu_check/<device>
# publishes them, replacing that folder's smoke/), with check.json: the device, each step's
# exit status and duration, every gpu test's outcome, the targets, the smoke runs and a
# verdict (gridlstm.benchmarks.gpu_check). A failed or timed-out step (exit 124) does not
# stop the others; the exit status is 1 if any failed.
# --dry-run: on the CPU, to check the script itself: skips step 1 (it needs CUDA, and says
# so), runs the bench, the step speeds and the smoke runs at tiny sizes; results in
# multirun/gpu_check_dry_run.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
out=""
minutes=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=true ;;
        out=*) out="${arg#out=}" ;;
        minutes=*) minutes="${arg#minutes=}" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$arg'; valid: --dry-run, out=DIR, minutes=N" >&2
           exit 2 ;;
    esac
done
minutes="${minutes:-$([[ "$dry" == true ]] && echo 8 || echo 2)}"  # the dry run's tiny jobs share CPUs
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
    out="${out:-multirun/gpu_check/$slug}"
fi
mkdir -p "$out"
echo "gpu_check: $device -> $out"
steps=()

step() {  # step NAME SECONDS COMMAND...: run it for at most SECONDS (then exit 124), record
    # its status and seconds, never stop the script
    local name="$1" limit="$2" start status
    shift 2
    echo "== $name (at most $limit s): $*"
    start=$(date +%s)
    set +e
    timeout --kill-after=15 "$limit" "$@"
    status=$?
    set -e
    steps+=("$name $status $(( $(date +%s) - start ))")
    echo "== $name: exit $status after $(( $(date +%s) - start )) s"
}

# The GPU studies' shapes (scripts/gpu_studies.yaml): what their GPU-hours are planned from.
addition15=(experiment=addition_paper hardware.precision=32-true)
addition15_models=(grid2d:1,2,4,8,18 grid2d_untied:1,2,4,8,18 stacked_lstm:1,2,4,8,18)
parity=(experiment=parity_paper hardware.precision=32-true param_budget=8500000
        task.datamodule.bits=64)
parity_models=(grid1d:1,4,25 tanh_net:1,4,25 relu_net:1,4,25 relu_resnet:1,4,25)
mnist_models=(grid3d_paper:4 mdlstm:4 row_lstm:4 cnn:4)
enwik8_models=(grid2d:3 stacked_lstm:3)  # conf/experiment/enwik8_paper.yaml's sweep, its depth
if [[ "$dry" == true ]]; then
    echo "== pytest -m gpu: skipped in the dry run (it needs a CUDA device)"
    steps+=("pytest_gpu skipped 0")
    tiny=(device=cpu hidden=16 layers=2 batch=2 length=8 grid_size=4 grid_hidden=8
          grid_batch=2 repeats=1 warmup=0 tr_batch=2 tr_src_len=3 tr_tgt_len=3 tr_params=150000)
    step bench_float32 600 python -m gridlstm.bench "${tiny[@]}" json="$out/bench_float32.json"
    step bench_bfloat16 600 python -m gridlstm.bench "${tiny[@]}" dtype=bfloat16 \
        skip_translation=true json="$out/bench_bfloat16.json"
    step step_speed 600 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_addition15.json\" steps=2 warmup=1 \
        ${addition15[*]} hardware=cpu param_budget=4000 task.datamodule.digits=3 \
        -- grid2d:1,2 stacked_lstm:1 2>&1 | tee '$out/step_speed_addition15.txt'"
    step step_speed_mnist 600 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_mnist.json\" steps=2 \
        warmup=1 experiment=mnist_paper synthetic_mnist=1 hardware=cpu model.net.hidden_size=8 \
        task.module.classifier_hidden=16 task.datamodule.batch_size=4 -- grid3d_paper:1 cnn:1 \
        2>&1 | tee '$out/step_speed_mnist.txt'"
    step step_speed_enwik8 600 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_enwik8.json\" steps=2 warmup=1 experiment=enwik8_paper \
        synthetic_enwik8=1 hardware=cpu param_budget=20000 task.datamodule.batch_size=4 \
        task.datamodule.bptt=16 -- grid2d:1 stacked_lstm:1 2>&1 | tee '$out/step_speed_enwik8.txt'"
    step smoke 600 python -m gridlstm.queue studies=scripts/gpu_check.yaml dry_run=true \
        minutes="$minutes" jobs=2 runs="$out/smoke_runs" results="$out/smoke"
else
    workers=(-o addopts=--strict-markers)  # without pytest-xdist, drop the default -n auto
    if python -c "import xdist" 2>/dev/null; then
        workers=(-n 6)
    fi
    # The smoke runs beside the tests (neither is timed), both before the timed steps; fresh
    # each time: in new run folders, and without an earlier check's records in $out/smoke
    # (the queue would restore those instead of running the jobs).
    rm -rf "$out/smoke"
    ( step smoke $(( minutes * 60 + 60 )) python -m gridlstm.queue studies=scripts/gpu_check.yaml \
        minutes="$minutes" jobs=4 runs="multirun/gpu_check_runs/$(date +%Y%m%d-%H%M%S)" \
        results="$out/smoke"
      echo "${steps[-1]}" > "$out/smoke.step" ) &
    smoke=$!
    step pytest_gpu 240 bash -c "set -o pipefail; python -m pytest -m gpu -q -ra ${workers[*]} \
        -p no:cacheprovider --junitxml='$out/pytest.xml' 2>&1 | tee '$out/pytest.txt'"
    wait "$smoke" || true
    steps+=("$(cat "$out/smoke.step" 2>/dev/null || echo "smoke 1 0")")
    rm -f "$out/smoke.step"
    step bench_float32 80 python -m gridlstm.bench device=cuda repeats=5 \
        json="$out/bench_float32.json"
    step bench_bfloat16 80 python -m gridlstm.bench device=cuda repeats=5 dtype=bfloat16 \
        json="$out/bench_bfloat16.json"
    step step_speed 50 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_addition15.json\" steps=20 warmup=5 \
        ${addition15[*]} hardware=gpu -- ${addition15_models[*]} 2>&1 \
        | tee '$out/step_speed_addition15.txt'"
    step step_speed_parity 50 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_parity.json\" steps=20 \
        warmup=5 ${parity[*]} hardware=gpu -- ${parity_models[*]} 2>&1 \
        | tee '$out/step_speed_parity.txt'"
    # The MNIST study's shape, in its bf16 mixed precision: on the IDX files where
    # $GRIDLSTM_DATA_DIR/mnist holds them, else on random pixels of the same sizes.
    mnist="${GRIDLSTM_DATA_DIR:-}/mnist"
    pixels=(synthetic_mnist=1)
    if [[ -d "$mnist/MNIST/raw" ]]; then
        pixels=("task.datamodule.data_dir='$mnist'" task.datamodule.download=false)
    fi
    step step_speed_mnist 90 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_mnist.json\" steps=20 \
        warmup=5 experiment=mnist_paper ${pixels[*]} hardware=gpu -- ${mnist_models[*]} 2>&1 \
        | tee '$out/step_speed_mnist.txt'"
    # The enwik8 paper preset's shape (its two models at their depth): on the file where
    # $GRIDLSTM_DATA_DIR/enwik8 holds it, else on random bytes (a step's time is the shapes').
    text="${GRIDLSTM_DATA_DIR:-}/enwik8"
    bytes=(synthetic_enwik8=1)
    if [[ -f "$text/enwik8" ]]; then
        bytes=("task.datamodule.data_dir='$text'" task.datamodule.download=false)
    fi
    step step_speed_enwik8 60 bash -c "set -o pipefail; python -m gridlstm.bench steps \
        json=\"$out/step_speed_enwik8.json\" steps=10 \
        warmup=3 experiment=enwik8_paper ${bytes[*]} hardware=gpu -- ${enwik8_models[*]} 2>&1 \
        | tee '$out/step_speed_enwik8.txt'"
fi

python -m gridlstm.benchmarks.gpu_check "$out" "$device" "${steps[@]}"
for s in "${steps[@]}"; do
    read -r _ status _ <<< "$s"
    if [[ "$status" != 0 && "$status" != skipped ]]; then
        exit 1
    fi
done

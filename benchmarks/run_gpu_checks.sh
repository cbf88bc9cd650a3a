#!/usr/bin/env bash
# Every check of the CUDA loss that needs a GPU, in one go, logs into one folder.
#
#   benchmarks/run_gpu_checks.sh OUT_DIR [WHEEL_DIR]
#
# With WHEEL_DIR, installs the wheels there (ferrofix's, liger-kernel's) into a private
# target first; otherwise uses the ferrofix the current python imports. Then, each step
# logged to OUT_DIR and allowed to fail without stopping the others:
#   doctor.log     python -m ferrofix doctor (driver, device, NVRTC, every kernel compiled)
#   tests.log      the gpu tests with --ferrofix-require-gpu (skips become failures)
#   tune.log       benchmarks/tune_loss_cuda.py (block size and grid sweep)
#   bench.log      benchmarks/bench_loss_cuda.py, plus loss_cuda.md (its results table)
#   memcheck.log   compute-sanitizer memcheck over the loss tests that touch every kernel
set -u
out=${1:?usage: run_gpu_checks.sh OUT_DIR [WHEEL_DIR]}
wheels=${2:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

if [ -n "$wheels" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/ferrofix-site "$wheels"/*.whl || exit 1
    export PYTHONPATH=/tmp/ferrofix-site${PYTHONPATH:+:$PYTHONPATH}
fi
# The checkout's python/ferrofix has no extension in it: make sure the installed one wins.
cd "$(dirname "$0")/.."

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, report the status
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: rc=$rc in $((SECONDS - started)) s"
    tail -n "${TAIL:-15}" "$out/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
step doctor 120 "$python" -m ferrofix doctor
step tests 300 "$python" -m pytest -q -p no:cacheprovider -p no:randomly --ferrofix-require-gpu \
    tests/test_loss_cuda.py tests/test_cuda.py
TAIL=60 step tune 200 "$python" benchmarks/tune_loss_cuda.py --profile
TAIL=30 step bench 240 "$python" benchmarks/bench_loss_cuda.py
cp benchmarks/results/loss_cuda.md "$out/" 2>/dev/null
step memcheck 300 compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$python" -m pytest -q -p no:cacheprovider -p no:randomly --ferrofix-require-gpu \
    tests/test_loss_cuda.py -k "cpu_path and V10003 or split or on_chip or in_place or out_of_range or ignored or nan"

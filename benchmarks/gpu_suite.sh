#!/usr/bin/env bash
# The GPU suite: the larger, closer-to-the-paper variant of every reproduction, and `labelsky catalog` on the
# GPU, in at most GPU_SUITE_BUDGET_S seconds (default 540, i.e. 9 minutes on one H100), each step writing
# benchmarks/results/<name>_gpu.json and .md.
#
#   bash benchmarks/gpu_suite.sh            # on a machine with a CUDA GPU, from a clean checkout
#   bash benchmarks/gpu_suite.sh --smoke    # anywhere: every step's quick variant on the CPU, results to a
#                                           # scratch folder (GPU_SUITE_BUDGET_S=3600 to let every step finish)
#
# Every step has its own time limit (and none runs past the suite's budget); a step that runs out writes no
# result file and is reported as "timed out" in benchmarks/results/gpu_suite_log.md (--smoke: the scratch
# folder), with its exit status and seconds. Sizes (image size, backbone, galaxies) are the seeds' as far as a
# step fits its limit; where they differ from the paper, the step's result file says so (its config).
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
BUDGET=${GPU_SUITE_BUDGET_S:-540}
PY=${PYTHON:-python}
THREADS=${GPU_SUITE_THREADS:-8}
WORKERS=${GPU_SUITE_WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
WORK=${GPU_SUITE_WORK:-/tmp/labelsky_gpu_suite}
SUFFIX=_gpu
DEVICE=cuda
if (( SMOKE )); then
    DEVICE=cpu
    export LABELSKY_BENCH_RESULTS=${LABELSKY_BENCH_RESULTS:-$WORK/smoke_results}
    export LABELSKY_BENCH_ALLOW_MODIFIED=1
    mkdir -p "$LABELSKY_BENCH_RESULTS"
    LOG="$LABELSKY_BENCH_RESULTS/gpu_suite_log.md"
    SUFFIX=_gpu_smoke
    WORK=$WORK/smoke
else
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_suite.sh: no CUDA GPU visible to torch; run it on a GPU machine, or with --smoke to check it" >&2
        exit 2
    fi
    LOG=benchmarks/results/gpu_suite_log.md
fi
mkdir -p "$WORK"
START=$(date +%s)
{
    echo "<!-- written by benchmarks/gpu_suite.sh; do not edit -->"
    echo
    echo "GPU suite, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
         "budget ${BUDGET} s, smoke ${SMOKE}"
    echo
    "$PY" -c "import torch; print('Device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU')"
    echo
    echo "| step | exit status | seconds | result |"
    echo "|---|---|---|---|"
} > "$LOG"

# step NAME LIMIT_S SCRIPT ARGS... : run benchmarks/SCRIPT with ARGS (plus --quick with --smoke) under its limit
step() {
    local name=$1 limit=$2 script=$3
    shift 3
    (( SMOKE )) && limit=900  # a CPU, and only the arguments and the steps' plumbing are checked
    local left=$(( BUDGET - ($(date +%s) - START) ))
    (( limit > left )) && limit=$left
    if (( limit < 20 )); then
        echo "| $name | not run | 0 | budget spent |" >> "$LOG"
        return
    fi
    local extra=()
    (( SMOKE )) && extra=(--quick)
    echo "== $name (limit ${limit} s): $script $* ${extra[*]}"
    local t0 rc
    t0=$(date +%s)
    timeout --signal=TERM --kill-after=15 "$limit" "$PY" "benchmarks/$script" "$@" "${extra[@]}" --name "$name$SUFFIX"
    rc=$?
    local what="${name}${SUFFIX}.md"
    (( rc == 124 || rc == 137 )) && what="timed out"
    (( rc != 0 && rc != 124 && rc != 137 )) && what="failed"
    echo "| $name | $rc | $(( $(date +%s) - t0 )) | $what |" >> "$LOG"
}

# `labelsky catalog` on the GPU, I/O included: goal >= 20,000 images/s for ResNet-18 at 64 px on one H100, and
# >= 0.8 of the bare forward rate
step catalog_throughput 150 catalog_throughput.py --device "$DEVICE" --threads "$THREADS" --sizes 16384 65536 \
    --image-size 64 --batch-size 1024 --shard-size 4096 --naive-n 2000 --goal 20000 --work-dir "$WORK/catalog"
# DeepAstroUDA, LSST Y1 -> Y10 (the paper's first experiment): 64 px, ResNet-18, the full method, its no-AC
# ablation and source-only, one seed
step deepastrouda 130 deepastrouda.py --experiments lsst-y1-y10 --n 3000 --epochs 15 --stamp-size 64 \
    --backbone resnet18 --seeds 0 --methods source_only deepastrouda deepastrouda_no_ac --threads "$THREADS" \
    --workers "$WORKERS" --work-dir "$WORK/deepastrouda"
# Khan et al. 2019: the paper's sample size, self-supervised pretraining, ResNet-18 (the paper: Xception at 224 px)
step khan2019 110 khan2019.py --n 6000 --epochs 10 --seeds 0 --pretrain selfsup --backbone resnet18 \
    --threads "$THREADS" --workers "$WORKERS" --work-dir "$WORK/khan2019"
# Liang et al. (band self-supervision, richness): 1000 clusters at 64 px, ResNet-18, Base vs Ours fine-tuned
step owg 90 owg.py --n 1000 --npix 64 --backbone resnet18 --folds 5 --repeats 1 --fractions 0.05 0.2 0.5 1.0 \
    --protocols finetune --threads "$THREADS" --workers "$WORKERS" --work-dir "$WORK/owg"
# the equivariant-transformer VAE, one seed
step etvae 60 etvae.py --n 4000 --seeds 0 --threads "$THREADS" --workers "$WORKERS" --work-dir "$WORK/etvae"

echo "Total $(( $(date +%s) - START )) s of ${BUDGET} s." >> "$LOG"
cat "$LOG"

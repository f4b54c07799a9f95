#!/usr/bin/env bash
# `make reproduce-gpu`: CentralNet's Table 2 (two PCA views of MNIST) and Table 4 (MNIST + Free
# Spoken Digits) at the paper's full protocol -- every row, 5 seeds (0-4), 100 epochs, the paper's
# trunks, Adam and learning rates (the experiments' own configs) -- on one GPU, then the report.
# Each job runs in bf16 with its splits resident on the GPU (+reproduce_gpu=centralnet2018, which
# prints that under the table), and GPU_PACK_JOBS jobs share the GPU at once
# (hydra/launcher=gpu_pack). Needs MMFUSION_DATA_DIR (or paths.data_dir) holding mnist10k/ and fsdd/.
# Runs go to $REPRO_DIR (logs/reproduce_gpu), tables to $RESULTS_DIR (docs/results).
# REPRO_TINY=1 proves the path on a CPU in minutes: trainer=cpu in bf16, two rows per table, seed 0,
# one epoch of two batches (val/test two batches), two packed jobs, tables under $REPRO_DIR/results.
set -euo pipefail

PY=${PY:-.venv/bin/python}
OUT=${REPRO_DIR:-logs/reproduce_gpu}
RESULTS=${RESULTS_DIR:-docs/results}
JOBS=${GPU_PACK_JOBS:-8}
CORES=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))}
TRAINER=(trainer=gpu)
SEEDS="range(0,5)"
MNIST_ROWS=()   # empty: every row the experiment sweeps
AVMNIST_ROWS=()
TINY=()
if [[ -n "${REPRO_TINY:-}" ]]; then
    RESULTS=${RESULTS_DIR:-$OUT/results}
    JOBS=${GPU_PACK_JOBS:-2}
    export OMP_NUM_THREADS=1
    TRAINER=(trainer=cpu trainer.precision=bf16-mixed)
    SEEDS=0
    MNIST_ROWS=(method=centralnet2018_mnist/centralnet,centralnet2018_mnist/concat_multitask)
    AVMNIST_ROWS=(method=centralnet2018_avmnist/centralnet,centralnet2018_avmnist/concat)
    TINY=(trainer.max_epochs=1 +trainer.limit_train_batches=2 +trainer.limit_val_batches=2
          +trainer.limit_test_batches=2)
fi
mkdir -p "$OUT" "$RESULTS"

sweep() {  # sweep EXPERIMENT [overrides...]
    local experiment=$1
    shift
    "$PY" -m src.train -m "experiment=$experiment" +reproduce_gpu=centralnet2018 "${TRAINER[@]}" \
        "seed=$SEEDS" hydra/launcher=gpu_pack "hydra.launcher.n_jobs=$JOBS" logger=csv \
        callbacks.progress_bar=null "hydra.sweep.dir=$OUT/$experiment" "${TINY[@]}" "$@" \
        >"$OUT/$experiment.log" 2>&1
}

status=0
for experiment in centralnet2018_mmnist centralnet2018_avmnist; do
    start=$(date +%s)
    if [[ $experiment == centralnet2018_mmnist ]]; then rows=("${MNIST_ROWS[@]}"); else rows=("${AVMNIST_ROWS[@]}"); fi
    sweep "$experiment" "${rows[@]}" || status=$?
    echo "$experiment: $(( $(date +%s) - start )) s wall (exit $status, $JOBS jobs at once); log $OUT/$experiment.log"
    "$PY" -m src.report "$OUT/$experiment" --out "$RESULTS/$experiment" >/dev/null
    echo "written: $RESULTS/$experiment/table.md"
done
exit $status

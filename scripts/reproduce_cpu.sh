#!/usr/bin/env bash
# Regenerates docs/results/ on a CPU machine (`make reproduce-cpu`): the tables that run without
# downloads -- the GMU paper's 1000 synthetic experiments and CentralNet's Table 2 (on the embedded
# 8x8 digits and on real MNIST) and Table 4 (MNIST + Free Spoken Digits) -- 5 seeds per row.
# Needs MMFUSION_DATA_DIR (or paths.data_dir) holding mnist10k/ and fsdd/ (see docs/data.md).
# Two lanes of one-thread processes keep two cores busy; runs go to $REPRO_DIR (logs/reproduce).
# Overrides for the CPU budget (stated in docs/results/centralnet2018.md): 5 epochs on MNIST and
# avMNIST (patience 3) and 28x28 spectrograms instead of the paper's 112x112.
set -euo pipefail

PY=${PY:-.venv/bin/python}
OUT=${REPRO_DIR:-logs/reproduce}
RESULTS=${RESULTS_DIR:-docs/results}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT" "$RESULTS"

MNIST_CPU=(trainer.max_epochs=5 callbacks.early_stopping.patience=3)
AVMNIST_CPU=("${MNIST_CPU[@]}" data.freq_bins=28 data.time_frames=28)

sweep() {  # sweep EXPERIMENT SEEDS PART [overrides...]
    local experiment=$1 seeds=$2 part=$3
    shift 3
    "$PY" -m src.train -m "experiment=$experiment" "seed=$seeds" logger=csv callbacks.progress_bar=null \
        "hydra.sweep.dir=$OUT/$experiment/$part" "$@" >"$OUT/$experiment.$part.log" 2>&1
}

start=$(date +%s)
(
    sweep centralnet2018_mmnist 0,1,2 seeds012 "${MNIST_CPU[@]}"
    sweep centralnet2018_avmnist 0,1,2 seeds012 "${AVMNIST_CPU[@]}"
) &
lane_a=$!
(
    "$PY" -m src.experiments.synthetic_gmu --experiments 1000 --out "$RESULTS/arevalo2017_synthetic.md" \
        >"$OUT/arevalo2017_synthetic.log" 2>&1
    "$PY" -m src.experiments.synthetic_gmu --experiments 1000 --layout random --noise-std 1.0 --hidden-dim 4 \
        --out "$RESULTS/arevalo2017_synthetic_random.md" >"$OUT/arevalo2017_synthetic_random.log" 2>&1
    sweep centralnet2018_digits 0,1,2,3,4 seeds01234
    sweep centralnet2018_mmnist 3,4 seeds34 "${MNIST_CPU[@]}"
    sweep centralnet2018_avmnist 3,4 seeds34 "${AVMNIST_CPU[@]}"
) &
lane_b=$!
status=0
wait $lane_a || status=$?
wait $lane_b || status=$?
echo "sweeps finished in $(( $(date +%s) - start )) s (exit $status); logs in $OUT/*.log"

for experiment in centralnet2018_digits centralnet2018_mmnist centralnet2018_avmnist; do
    "$PY" -m src.report "$OUT/$experiment"/* --out "$RESULTS/$experiment" >/dev/null
    echo "written: $RESULTS/$experiment/table.md"
done
exit $status

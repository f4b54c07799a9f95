#!/usr/bin/env bash
# Regenerates docs/results/ on a CPU machine (`make reproduce-cpu`): the tables that run without
# downloads -- the GMU paper's 1000 synthetic experiments and CentralNet's Table 2 (on the embedded
# 8x8 digits and on real MNIST) and Table 4 (MNIST + Free Spoken Digits).
# Needs MMFUSION_DATA_DIR (or paths.data_dir) holding mnist10k/ and fsdd/ (see docs/data.md).
# Two lanes of one-thread processes keep two cores busy; runs go to $REPRO_DIR (logs/reproduce).
# The experiments keep the papers' protocols; the CPU budget is conf/reproduce_cpu/<experiment>.yaml
# (added as +reproduce_cpu=<experiment>), whose ledger entries the report prints under each table:
#   centralnet2018_mmnist, centralnet2018_avmnist: 1 epoch (paper: 100)
#   centralnet2018_digits: 10 epochs (paper: 100)
# and 5 seeds (0-4) per row everywhere. An estimated ~1.5 h on two idle cores (measured step costs in
# docs/results/centralnet2018.md).
# REPRO_SMOKE=1 checks the whole chain in minutes: one epoch, seed 0, two rows per table, 10
# synthetic experiments, tables written under $REPRO_DIR/results instead of docs/results.
# REPRO_RESUME=1 continues an interrupted run in place (resume_sweep on every sweep: completed jobs
# are skipped, interrupted ones resume from last.ckpt, failed ones run again; the synthetic
# experiments, which write their pages in one go, are not rerun).
set -euo pipefail

PY=${PY:-.venv/bin/python}
OUT=${REPRO_DIR:-logs/reproduce}
RESULTS=${RESULTS_DIR:-docs/results}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

SYNTHETIC=1000
SEEDS=0,1,2,3,4    # mmnist and avmnist
DIGITS_A=0,1,2     # digits, split over the two lanes
DIGITS_B=3,4
MNIST_ROWS=()      # empty: every row the experiment sweeps
AVMNIST_ROWS=()
SMOKE=()
if [[ -n "${REPRO_SMOKE:-}" ]]; then
    RESULTS=${RESULTS_DIR:-$OUT/results}
    SYNTHETIC=10
    SEEDS=0 DIGITS_A=0 DIGITS_B=
    MNIST_ROWS=(method=centralnet2018_mnist/centralnet,centralnet2018_mnist/ensemble_2)
    AVMNIST_ROWS=(method=centralnet2018_avmnist/centralnet,centralnet2018_avmnist/concat)
    SMOKE=(trainer.max_epochs=1)
fi
mkdir -p "$OUT" "$RESULTS"

sweep() {  # sweep EXPERIMENT SEEDS PART [overrides...]
    local experiment=$1 seeds=$2 part=$3
    shift 3
    "$PY" -m src.train -m "experiment=$experiment" "+reproduce_cpu=$experiment" "seed=$seeds" logger=csv \
        callbacks.progress_bar=null "hydra.sweep.dir=$OUT/$experiment/$part" ${REPRO_RESUME:+"resume_sweep=$OUT/$experiment/$part"} "${SMOKE[@]}" "$@" \
        >"$OUT/$experiment.$part.log" 2>&1
}

start=$(date +%s)
(
    sweep centralnet2018_mmnist "$SEEDS" lane_a "${MNIST_ROWS[@]}"
    sweep centralnet2018_digits "$DIGITS_A" lane_a "${MNIST_ROWS[@]}"
) &
lane_a=$!
(
    [[ -n "${REPRO_RESUME:-}" ]] || "$PY" -m src.experiments.synthetic_gmu --experiments "$SYNTHETIC" --out "$RESULTS/arevalo2017_synthetic.md" \
        >"$OUT/arevalo2017_synthetic.log" 2>&1
    [[ -n "${REPRO_RESUME:-}" ]] || "$PY" -m src.experiments.synthetic_gmu --experiments "$SYNTHETIC" --layout random --noise-std 1.0 --hidden-dim 4 \
        --out "$RESULTS/arevalo2017_synthetic_random.md" >"$OUT/arevalo2017_synthetic_random.log" 2>&1
    sweep centralnet2018_avmnist "$SEEDS" lane_b "${AVMNIST_ROWS[@]}"
    if [[ -n "$DIGITS_B" ]]; then sweep centralnet2018_digits "$DIGITS_B" lane_b; fi
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

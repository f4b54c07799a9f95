#!/usr/bin/env bash
# Sweeps the checkpoints of `make reproduce-cpu` under missing and noisy modalities (`make robustness-cpu`):
# every finished job of CentralNet Table 4 (avMNIST) and Table 2 (mmnist) whose training seed is in
# $ROBUSTNESS_SEEDS, through `python -m src.robustness -m ckpt_path=... robustness=quick`, in two lanes
# of one-thread processes; then `python -m src.report --robustness` over both lanes writes
# $RESULTS/robustness_<experiment>/ (table, gate tables, curves). A checkpoint is swept on the
# modalities its model reads only (src.robustness's default: Fusion.reads).
# Needs $REPRO_DIR (logs/reproduce) as `make reproduce-cpu` leaves it; runs go to $ROBUSTNESS_DIR.
# ROBUSTNESS_RESUME=1 continues an interrupted run: checkpoints whose robustness.json is already under
# $ROBUSTNESS_DIR/<experiment> are skipped, the others are swept into new lane folders beside them.
set -euo pipefail

PY=${PY:-.venv/bin/python}
REPRO=${REPRO_DIR:-logs/reproduce}
OUT=${ROBUSTNESS_DIR:-logs/robustness}
RESULTS=${RESULTS_DIR:-docs/results}
SEEDS=${ROBUSTNESS_SEEDS:-0,1,2,3,4}
EXPERIMENTS=${ROBUSTNESS_EXPERIMENTS:-centralnet2018_avmnist centralnet2018_mmnist}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

checkpoints() {  # checkpoints EXPERIMENT: the best checkpoint of every finished job of the given seeds
    "$PY" - "$REPRO/$1" "$SEEDS" "$OUT/$1" "${ROBUSTNESS_RESUME:-}" <<'EOF'
import json
import sys
from pathlib import Path

import yaml

root, seeds = Path(sys.argv[1]), {int(s) for s in sys.argv[2].split(",")}
swept = set()
if sys.argv[4]:  # ROBUSTNESS_RESUME: what an earlier run of this script already swept
    swept = {json.loads(p.read_text())["meta"]["ckpt_path"] for p in Path(sys.argv[3]).glob("*/*/robustness.json")}
for job in sorted(root.glob("*/*/metrics.json")):
    config = yaml.safe_load((job.parent / "config.yaml").read_text())
    best = sorted(job.parent.glob("checkpoints/epoch_*.ckpt"))
    if config.get("seed") in seeds and best and str(best[-1]) not in swept:
        print(best[-1])
EOF
}

start=$(date +%s)
mkdir -p "$OUT"
for experiment in $EXPERIMENTS; do
    mapfile -t ckpts < <(checkpoints "$experiment")
    suffix=${ROBUSTNESS_RESUME:+_$(date +%Y%m%d%H%M%S)}
    if [[ ${#ckpts[@]} -eq 0 && -n "${ROBUSTNESS_RESUME:-}" ]]; then
        echo "$experiment: every checkpoint is already swept"
    elif [[ ${#ckpts[@]} -eq 0 ]]; then
        echo "no finished $experiment jobs under $REPRO (run make reproduce-cpu first)" >&2
        exit 2
    fi
    half=$(( (${#ckpts[@]} + 1) / 2 ))
    lanes=()
    for lane in a b; do
        if [[ $lane == a ]]; then part=("${ckpts[@]:0:half}"); else part=("${ckpts[@]:half}"); fi
        [[ ${#part[@]} -eq 0 ]] && continue
        (IFS=,; "$PY" -m src.robustness -m "ckpt_path=${part[*]}" robustness=quick \
            "hydra.sweep.dir=$OUT/$experiment/lane_$lane$suffix" >"$OUT/$experiment.lane_$lane$suffix.log" 2>&1) &
        lanes+=($!)
    done
    status=0
    for pid in "${lanes[@]}"; do wait "$pid" || status=$?; done
    echo "$experiment: ${#ckpts[@]} checkpoints swept (exit $status) at $(( $(date +%s) - start )) s"
    "$PY" -m src.report "$OUT/$experiment"/lane_* --robustness --out "$RESULTS/robustness_$experiment" \
        --title "$experiment: make reproduce-cpu checkpoints, robustness=quick" >/dev/null
    echo "written: $RESULTS/robustness_$experiment/robustness_table.md"
done

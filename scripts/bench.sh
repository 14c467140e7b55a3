#!/usr/bin/env bash
# Benchmarks spectrain against the independent Python references, in the same
# run, on the same machine, and prints ratios. No GPU needed.
#
#   scripts/bench.sh [SPECTRA_DIR LABELS_CSV]
#
# 1. prepare: FITS directory -> HDF5, against ../shared/reference/preprocess.py
#    (astropy + PyWavelets) on the same files (default: the 1,200 DR10 spectra).
# 2. network: training (forward + Huber + backward + Adam, batch 64) and
#    inference (batch 256) throughput of the paper's DenseNet on the CPU backend,
#    against the PyTorch reference (scripts/bench_torch.py), with the cores each
#    used, the GFLOP/s achieved (forward FLOPs from the config, training = 3x)
#    and the compute ceiling: the machine's GEMM GFLOP/s on the network's shapes.
#    With BENCH_WGPU=1 also on the wgpu backend (builds with --features wgpu)
#    and PyTorch CUDA.
#
# 3. predict end to end: gzip FITS directory -> catalog with the shipped
#    3-member model, against ../shared/reference/pipeline_predict.py (astropy +
#    PyWavelets + PyTorch, 3 members) on the same files.
#
# 4. baselines: `spectrain baseline` (smartcore / forust-ml) against
#    scikit-learn and XGBoost with matched settings (scripts/bench_baselines.py).
#
# The Python side runs when its packages are installed
# (pip install astropy PyWavelets numpy pandas torch); otherwise it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
spectra=${1:-../shared/data/lamost/dr10/spectra}
labels=${2:-../shared/data/lamost/dr10/labels.csv}
reference=../shared/reference
threads=${SPECTRAIN_THREADS:-$(nproc)}
reps=${BENCH_REPS:-3}

scripts/setup.sh
cargo build --release --quiet
bin=target/release/spectrain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=$(find -L "$spectra" -name '*.fit*' | wc -l)

# Warm the OS file cache so both sides read from memory.
cat "$spectra"/* >/dev/null 2>&1 || true

best() { sort -g | head -1; }
# Seconds taken by a command (its output discarded).
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}'; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN{printf "%.0f", n/t}'; }
echo "prepare: $n files from $spectra, $threads threads, best of $reps"
ours=$(for _ in $(seq "$reps"); do
  seconds "$bin" -q -j "$threads" prepare --spectra "$spectra" --labels "$labels" --out "$work/bench.h5" --force
done | best)
printf '  spectrain          %8.2f s  %8s spectra/s\n' "$ours" "$(rate "$n" "$ours")"

if [ -f "$reference/preprocess.py" ] && python3 -c 'import astropy, pywt, pandas' 2>/dev/null; then
  ref=$(seconds python3 "$reference/preprocess.py" "$spectra" "$labels" "$work/ref.npz")
  printf '  python reference   %8.2f s  %8s spectra/s\n' "$ref" "$(rate "$n" "$ref")"
  printf '  speed-up           %8sx\n' "$(awk -v a="$ref" -v b="$ours" 'BEGIN{printf "%.1f", a/b}')"
else
  echo "  python reference: skipped (needs $reference/preprocess.py and astropy, PyWavelets, pandas)"
fi

echo
echo "network: the paper's DenseNet (3 outputs), $threads threads, ${BENCH_SECONDS:-5} s per measurement, load $(cut -d' ' -f1-3 /proc/loadavg)"
secs=${BENCH_SECONDS:-5}
# Lines: `spectrain-cpu <what> <spectra/s> spectra/s cores <c> GFLOP/s <g>`,
# `spectrain-cpu forward_flops_per_spectrum <n>`, `cpu gemm_ceiling <g> GFLOP/s cores <c>`.
ours_net=$("$bin" -q -j "$threads" bench --backend cpu --seconds "$secs")
echo "$ours_net" | sed 's/^/  /'
flops=$(echo "$ours_net" | awk '$2 == "forward_flops_per_spectrum" {print $3}')
ceiling=$(echo "$ours_net" | awk '$2 == "gemm_ceiling" {print $3}')
# GFLOP/s of a training step (3 forwards) or an inference at a given spectra/s.
gflops() { awk -v f="$flops" -v r="$2" -v m="$1" 'BEGIN{printf "%.1f", m*f*r/1e9}'; }
if python3 -c 'import torch' 2>/dev/null && [ -f "$reference/densenet_ref.py" ]; then
  torch_net=$(python3 scripts/bench_torch.py --threads "$threads" --seconds "$secs" --reference-dir "$reference")
  echo "$torch_net" | grep '^torch' | sed 's/^/  /'
  for what in train_batch64 infer_batch256; do
    a=$(echo "$ours_net" | awk -v w="$what" '$2 == w {print $3}')
    b=$(echo "$torch_net" | awk -v w="$what" '$2 == w {print $3}')
    m=1; [ "$what" = train_batch64 ] && m=3
    printf '  %-16s spectrain / torch = %s   GFLOP/s spectrain %s, torch %s, of a %s GFLOP/s GEMM ceiling: %s%% / %s%%\n' \
      "$what" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')" \
      "$(gflops $m "$a")" "$(gflops $m "$b")" "$ceiling" \
      "$(awk -v g="$(gflops $m "$a")" -v c="$ceiling" 'BEGIN{printf "%.0f", 100*g/c}')" \
      "$(awk -v g="$(gflops $m "$b")" -v c="$ceiling" 'BEGIN{printf "%.0f", 100*g/c}')"
  done
else
  echo "  torch reference: skipped (needs torch and $reference/densenet_ref.py)"
  for what in train_batch64 infer_batch256; do
    a=$(echo "$ours_net" | awk -v w="$what" '$2 == w {print $3}')
    m=1; [ "$what" = train_batch64 ] && m=3
    printf '  %-16s %s GFLOP/s of a %s GFLOP/s GEMM ceiling\n' "$what" "$(gflops $m "$a")" "$ceiling"
  done
fi

echo
model=${BENCH_MODEL:-models/dr10-teff-logg-feh}
if [ -f "$model/spec.json" ]; then
  members=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['members'])" "$model/spec.json" 2>/dev/null || echo 3)
  echo "predict: $n files from $spectra, model $model ($members members), $threads threads, best of $reps"
  ours_p=$(for _ in $(seq "$reps"); do
    rm -f "$work/cat.csv" "$work/cat.csv.partial"
    seconds "$bin" -q -j "$threads" predict --backend cpu --model "$model" --spectra "$spectra" --out "$work/cat.csv" --force
  done | best)
  printf '  spectrain          %8.2f s  %8s spectra/s\n' "$ours_p" "$(rate "$n" "$ours_p")"
  if [ -f "$reference/pipeline_predict.py" ] && python3 -c 'import astropy, pywt, torch' 2>/dev/null; then
    ref_p=$(seconds python3 "$reference/pipeline_predict.py" "$spectra" "$work/ref-cat.csv" --members "$members" --threads "$threads")
    printf '  python pipeline    %8.2f s  %8s spectra/s\n' "$ref_p" "$(rate "$n" "$ref_p")"
    printf '  speed-up           %8sx\n' "$(awk -v a="$ref_p" -v b="$ours_p" 'BEGIN{printf "%.1f", a/b}')"
  else
    echo "  python pipeline: skipped (needs $reference/pipeline_predict.py, astropy, PyWavelets, torch)"
  fi
fi

echo
# 4. baselines: fit + predict time of `spectrain baseline` against scikit-learn /
#    XGBoost with matched settings (scripts/bench_baselines.py), on the dataset
#    prepared above (4096 inputs, 3 labels, 80% of the rows for fitting).
echo "baseline: fit + predict on $work/bench.h5 (3 labels), $threads threads"
for method in ${BENCH_BASELINES:-linear gbdt rf}; do
  ours_b=$(seconds "$bin" -q -j "$threads" baseline --data "$work/bench.h5" --method "$method" --out "$work/bl-$method")
  line=$(printf '  %-7s spectrain %8.2f s' "$method" "$ours_b")
  case $method in gbdt) mod=xgboost ;; *) mod=sklearn ;; esac
  if python3 -c "import h5py, $mod" 2>/dev/null; then
    ref_b=$(python3 scripts/bench_baselines.py "$work/bench.h5" --method "$method" --threads "$threads")
    line="$line$(printf '   python %8.2f s   speed-up %sx' "$ref_b" "$(awk -v a="$ref_b" -v b="$ours_b" 'BEGIN{printf "%.2f", a/b}')")"
  else
    line="$line   (python side skipped: needs h5py and $mod)"
  fi
  echo "$line"
done

if [ "${BENCH_WGPU:-0}" = 1 ]; then
  cargo build --release --quiet --features wgpu
  echo "  wgpu:"
  "$bin" -q bench --backend wgpu --seconds "$secs" | sed 's/^/  /'
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 scripts/bench_torch.py --device cuda --seconds "$secs" --reference-dir "$reference" | grep '^torch' | sed 's/^/  cuda /'
  fi
fi

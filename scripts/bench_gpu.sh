#!/usr/bin/env bash
# The GPU benchmark, in one command, on a machine with a GPU:
#
#   scripts/bench_gpu.sh [SPECTRA_DIR LABELS_CSV]
#
# Builds spectrain with `--features wgpu` (BENCH_FEATURES=vulkan for the SPIR-V
# compiler) and measures on the same device, in the same run:
# 1. network: training steps (forward + Huber + backward + Adam) at batch 32,
#    64 and 256 and inference at batch 256 and 1024: `spectrain bench --backend
#    wgpu` beside `scripts/bench_torch.py --device cuda` (PyTorch CUDA, when
#    torch sees a GPU), with the ratios. The first training step (autotune's
#    one-off kernel tuning included) is reported apart.
# 2. predict end to end over the spectra (default: the 1,200 shared DR10
#    files, gzip FITS) with the shipped model on wgpu, in spectra/s.
# 3. members at once: the wall time of a short training run (3 members x 5
#    epochs, batch 64, on those spectra, prepared first) with
#    `--parallel-members 1` (one member after another) and `auto` (up to 4 at
#    once on a GPU), and the ratio; with BENCH_FULL=1 also of the full
#    published run (10 members x 450 epochs, batch 64) both ways.
#
# Other settings: BENCH_SECTIONS (default "network predict members": the
# sections to run), BENCH_SHORT ("3x5": members x epochs of the short run),
# BENCH_PARALLEL (auto: what --parallel-members 1 is compared with), and
# CARGO_TARGET_DIR (where the wgpu build goes).
set -euo pipefail
cd "$(dirname "$0")/.."
spectra=${1:-../shared/data/lamost/dr10/spectra}
labels=${2:-../shared/data/lamost/dr10/labels.csv}
reference=../shared/reference
secs=${BENCH_SECONDS:-10}
features=${BENCH_FEATURES:-wgpu}
sections=" ${BENCH_SECTIONS:-network predict members} "
short=${BENCH_SHORT:-3x5}
parallel=${BENCH_PARALLEL:-auto}

scripts/setup.sh
cargo build --release --quiet --features "$features"
bin=${CARGO_TARGET_DIR:-target}/release/spectrain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== device"
"$bin" bench --backend wgpu --seconds 0.1 --train-batch 2 --infer-batch 2 2>&1 | grep -i 'adapter' || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [[ $sections == *" network "* ]]; then
echo
echo "== network: the paper's DenseNet (3 outputs), ${secs} s per measurement"
ours=""
for b in 32 64 256; do
  ours+=$("$bin" -q bench --backend wgpu --seconds "$secs" --train-batch "$b" --infer-batch 256 | grep train_batch)$'\n'
done
for b in 256 1024; do
  ours+=$("$bin" -q bench --backend wgpu --seconds "$secs" --train-batch 32 --infer-batch "$b" | grep infer_batch)$'\n'
done
echo -n "$ours" | sed 's/^/  /'
torch=""
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  torch=$(python3 scripts/bench_torch.py --device cuda --seconds "$secs" --train-batches 32,64,256 \
    --infer-batches 256,1024 --reference-dir "$reference" | grep '^torch')
  echo "$torch" | sed 's/^/  /'
  for what in train_batch32 train_batch64 train_batch256 infer_batch256 infer_batch1024; do
    a=$(echo "$ours" | awk -v w="$what" '$2 == w {print $3}')
    b=$(echo "$torch" | awk -v w="$what" '$2 == w {print $3}')
    printf '  %-16s spectrain-wgpu / torch-cuda = %s\n' "$what" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
  done
else
  echo "  torch CUDA: skipped (torch does not see a GPU)"
fi
fi

if [[ $sections == *" predict "* ]]; then
echo
n=$(find -L "$spectra" -name '*.fit*' | wc -l)
echo "== predict: $n files from $spectra, shipped model, wgpu"
t0=$(date +%s.%N)
"$bin" -q predict --backend wgpu --model models/dr10-teff-logg-feh --spectra "$spectra" --out "$work/cat.csv" --force
t1=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "  %.2f s, %.0f spectra/s\n", b-a, n/(b-a)}'
fi

if [[ $sections == *" members "* ]]; then
  echo
  echo "== members at once: --parallel-members 1 against $parallel, wgpu"
  "$bin" -q prepare --spectra "$spectra" --labels "$labels" --out "$work/all.h5" --force >/dev/null
  # Prints the wall time of one training run into $work/NAME.
  timed_train() {
    local name=$1 members=$2 epochs=$3 at_once=$4 t0 t1
    t0=$(date +%s.%N)
    "$bin" -q train --backend wgpu --data "$work/all.h5" --out "$work/$name" \
      --members "$members" --epochs "$epochs" --batch 64 --parallel-members "$at_once" --force >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}'
  }
  # The same run one member at a time and $parallel at once, and the speed-up.
  compare() {
    local what=$1 members=$2 epochs=$3 one many n
    one=$(timed_train "$what-1" "$members" "$epochs" 1)
    many=$(timed_train "$what-$parallel" "$members" "$epochs" "$parallel")
    n=$(sed -n 's/.*"members_at_once": \([0-9]*\).*/\1/p' "$work/$what-$parallel/provenance.json")
    printf '  %s, %s members x %s epochs: one at a time %s s; %s at once (%s) %s s; speed-up %s\n' \
      "$what" "$members" "$epochs" "$one" "$n" "$parallel" "$many" \
      "$(awk -v a="$one" -v b="$many" 'BEGIN{printf "%.2f", a/b}')"
  }
  compare short "${short%x*}" "${short#*x}"
  if [ "${BENCH_FULL:-0}" = 1 ]; then
    compare full-published-run 10 450
  fi
fi

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
# 3. With BENCH_FULL=1: the wall time of a full published run (10 members x
#    450 epochs, batch 64) on those spectra, prepared first.
set -euo pipefail
cd "$(dirname "$0")/.."
spectra=${1:-../shared/data/lamost/dr10/spectra}
labels=${2:-../shared/data/lamost/dr10/labels.csv}
reference=../shared/reference
secs=${BENCH_SECONDS:-10}
features=${BENCH_FEATURES:-wgpu}

scripts/setup.sh
cargo build --release --quiet --features "$features"
bin=target/release/spectrain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== device"
"$bin" bench --backend wgpu --seconds 0.1 --train-batch 2 --infer-batch 2 2>&1 | grep -i 'adapter' || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

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

echo
n=$(find -L "$spectra" -name '*.fit*' | wc -l)
echo "== predict: $n files from $spectra, shipped model, wgpu"
t0=$(date +%s.%N)
"$bin" -q predict --backend wgpu --model models/dr10-teff-logg-feh --spectra "$spectra" --out "$work/cat.csv" --force
t1=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "  %.2f s, %.0f spectra/s\n", b-a, n/(b-a)}'

if [ "${BENCH_FULL:-0}" = 1 ]; then
  echo
  echo "== full published run: 10 members x 450 epochs, batch 64, wgpu"
  "$bin" -q prepare --spectra "$spectra" --labels "$labels" --out "$work/all.h5" --force
  t0=$(date +%s)
  "$bin" train --backend wgpu --data "$work/all.h5" --out "$work/model" --members 10 --epochs 450 --batch 64 --force
  t1=$(date +%s)
  echo "  wall time $((t1 - t0)) s"
fi

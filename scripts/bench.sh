#!/usr/bin/env bash
# Benchmarks spectrain against the independent Python reference, in the same run,
# on the same files, and prints ratios. No GPU needed.
#
#   scripts/bench.sh [SPECTRA_DIR LABELS_CSV]
#
# Default data: ../shared/data/lamost/dr10 (1,200 real DR10 spectra). The Python
# reference (../shared/reference/preprocess.py: astropy + PyWavelets) is run when
# it and its packages are available (pip install astropy PyWavelets numpy pandas).
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
  seconds "$bin" -q -j "$threads" prepare --spectra "$spectra" --labels "$labels" --out "$work/bench.h5"
done | best)
printf '  spectrain          %8.2f s  %8s spectra/s\n' "$ours" "$(rate "$n" "$ours")"

if [ -f "$reference/preprocess.py" ] && python3 -c 'import astropy, pywt, pandas' 2>/dev/null; then
  ref=$(seconds python3 "$reference/preprocess.py" "$spectra" "$labels" "$work/ref.npz")
  printf '  python reference   %8.2f s  %8s spectra/s\n' "$ref" "$(rate "$n" "$ref")"
  printf '  speed-up           %8sx\n' "$(awk -v a="$ref" -v b="$ours" 'BEGIN{printf "%.1f", a/b}')"
else
  echo "  python reference: skipped (needs $reference/preprocess.py and astropy, PyWavelets, pandas)"
fi

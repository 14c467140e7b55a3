#!/usr/bin/env bash
# Shows that predict's memory stays flat with the number of files: builds
# survey-like trees of N symbolic links to the real dr10 spectra (1,000 per
# directory) and reports wall time and peak memory (max RSS) for 10,000 and
# 100,000 inputs.
#
#   scripts/survey_memory.sh [MODEL_DIR] [DR10_SPECTRA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/dr10-teff-logg-feh}
src=${2:-../shared/data/lamost/dr10/spectra}
cargo build --release --quiet
bin=$(pwd)/target/release/spectrain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t real < <(ls "$src"/*.fits*)
for n in 10000 100000; do
  tree=$work/survey-$n
  for ((i = 0; i < n; i++)); do
    d=$tree/d$((i / 1000))
    [ $((i % 1000)) -eq 0 ] && mkdir -p "$d"
    ln -s "$(realpath "${real[i % ${#real[@]}]}")" "$d/s$i-$(basename "${real[i % ${#real[@]}]}")"
  done
  /usr/bin/time -f "  $n inputs: %e s wall, max RSS %M KiB" \
    "$bin" -q predict --backend cpu --model "$model" --spectra "$tree" --out "$work/cat-$n.csv" --force >/dev/null
  rows=$(($(wc -l <"$work/cat-$n.csv") - 1))
  echo "  catalog rows: $rows (inputs: $n)"
  rm -rf "$tree"
done

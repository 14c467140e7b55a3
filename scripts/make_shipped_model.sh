#!/usr/bin/env bash
# Rebuilds models/dr10-teff-logg-feh and models/dr10-mass-age from the shared
# LAMOST DR10 set, exactly as shipped (training is deterministic for a seed):
# the 900 dr10 spectra NOT in assets/ are the training data, the 300 in assets/
# the hold-out set; labels.csv (Teff, log g, [Fe/H]) for the first model,
# labels-mist.csv (isochrone mass and age) for the second.
#
#   scripts/make_shipped_model.sh [DR10_DIR]     (default ../shared/data/lamost/dr10)
#
# About 30 minutes a model on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dr10=${1:-../shared/data/lamost/dr10}
scripts/setup.sh
cargo build --release --quiet
bin=target/release/spectrain
work=out/shipped-model
mkdir -p "$work/dev-spectra"

# Training spectra: every dr10 file that is not a hold-out file in assets/.
find "$work/dev-spectra" -type l -delete
for f in "$dr10"/spectra/*.fits*; do
  name=$(basename "$f")
  [ -e "assets/spectra/$name" ] || ln -s "$(realpath "$f")" "$work/dev-spectra/$name"
done

# ship MODEL LABELS.csv SUFFIX [PREPARE FLAGS]: the training and hold-out sets
# with LABELS.csv's labels (dr10's and assets/' copies), MODEL trained on the
# first with spectrain's defaults (5 members, warm-up + cosine from lr 1e-3, 200
# epochs, batch 32, Huber transition 0.3) and evaluated on the second.
ship() {
  local model=$1 labels=$2 suffix=$3
  shift 3
  "$bin" prepare --spectra "$work/dev-spectra" --labels "$dr10/$labels" "$@" --out "$work/dev$suffix.h5"
  "$bin" prepare --spectra assets/spectra --labels "assets/$labels" "$@" --out "$work/holdout$suffix.h5"
  "$bin" train --data "$work/dev$suffix.h5" --out "$model" --backend cpu --force
  "$bin" evaluate --model "$model" --data "$work/holdout$suffix.h5" --out "$model/holdout"
}
ship models/dr10-teff-logg-feh labels.csv ""
# Mass and age: the same spectra (so the same rows and split), the same defaults.
ship models/dr10-mass-age labels-mist.csv -mist --columns mass,age

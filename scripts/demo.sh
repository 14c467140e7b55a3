#!/usr/bin/env bash
# The whole spectrain path on the spectra shipped in assets/, in a few minutes
# on 2 CPU cores: prepare -> train a small ensemble -> evaluate -> predict.
# Everything goes to out/demo/. No GPU, no download.
#
# The small ensemble (2 members, 8 epochs) only shows the path; for real
# accuracy use models/dr10-teff-logg-feh or train longer (README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
bin=target/release/spectrain
out=out/demo
mkdir -p "$out"

echo "== prepare: assets/spectra + assets/labels.csv -> $out/assets.h5"
"$bin" prepare --spectra assets/spectra --labels assets/labels.csv --out "$out/assets.h5" --force

echo "== train: 2 members x 8 epochs of the DenseNet, spectrain's recipe (CPU)"
"$bin" train --data "$out/assets.h5" --out "$out/model" --members 2 --epochs 8 --force

echo "== evaluate: on the same stars (training + validation split: optimistic by construction)"
"$bin" evaluate --model "$out/model" --data "$out/assets.h5" --out "$out/report"

echo "== predict: every file under assets/spectra -> $out/catalog.csv"
rm -f "$out/catalog.csv.partial"
"$bin" predict --model "$out/model" --spectra assets/spectra --out "$out/catalog.csv" --force
echo
echo "done: $out/model (curves.png), $out/report (report.md, *.png), $out/catalog.csv"

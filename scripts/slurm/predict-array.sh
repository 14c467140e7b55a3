#!/usr/bin/env bash
# Predicting a whole survey on a Slurm cluster: a job array of N shards, each
# `spectrain predict --shard K/N` over the same directory, then one merge job.
#
#   sbatch --array=1-64 scripts/slurm/predict-array.sh      # 64 shards
#   # when all have finished (or with --dependency=afterok:<array job id>):
#   spectrain merge out/shards/catalog-*.csv --spectra "$SPECTRA" --out out/catalog.fits
#
# Each shard is a deterministic 1/N of the files (a hash of each file's path
# relative to SPECTRA), so shards never overlap, and a preempted or failed task
# rerun with --resume continues where it stopped. merge reports every file that
# is missing from all shards or present in two (exit status 3).
#
#SBATCH --job-name=spectrain-predict
#SBATCH --cpus-per-task=16
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=out/shards/slurm-%A_%a.log
# For GPU nodes (a spectrain built with --features wgpu), add for example:
##SBATCH --gres=gpu:1
set -euo pipefail

SPECTRA=${SPECTRA:?set SPECTRA to the directory of FITS files}
MODEL=${MODEL:-models/dr10-teff-logg-feh}
SPECTRAIN=${SPECTRAIN:-spectrain}
N=${SLURM_ARRAY_TASK_COUNT:?run as a job array: sbatch --array=1-N}
K=${SLURM_ARRAY_TASK_ID:?run as a job array: sbatch --array=1-N}

mkdir -p out/shards
out=out/shards/catalog-$(printf '%04d' "$K").csv
resume=()
[ -e "$out.partial" ] && resume=(--resume)
"$SPECTRAIN" -j "${SLURM_CPUS_PER_TASK:-1}" predict \
  --model "$MODEL" --spectra "$SPECTRA" --shard "$K/$N" --out "$out" "${resume[@]}"

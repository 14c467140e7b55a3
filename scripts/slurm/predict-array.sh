#!/usr/bin/env bash
# Predicting a whole survey on a Slurm cluster: a job array of N shards, each
# `spectrain predict --shard K/N` over the same directory, then one merge job.
#
#   export SPECTRA=/data/lamost/dr10 MODEL=models/dr10-teff-logg-feh OUT=out
#   jid=$(sbatch --parsable --array=1-64 scripts/slurm/predict-array.sh)   # 64 shards
#   sbatch --dependency=afterok:"$jid" --job-name=spectrain-merge --output=%x-%j.log \
#     --wrap 'spectrain merge "$OUT"/shards/catalog-*.csv --spectra "$SPECTRA" --out "$OUT"/catalog.fits'
#
# Each shard is a deterministic 1/N of the files (a hash of each file's path
# relative to SPECTRA), so shards never overlap. A preempted or requeued task
# continues its shard with --resume from the last complete chunk, and one whose
# shard is already complete does nothing. merge reports every file that is
# missing from all shards or present in two (exit status 3). Logs go to the
# submission directory: Slurm opens them before the script runs, so they
# cannot go to a directory the script creates.
#
#SBATCH --job-name=spectrain-predict
#SBATCH --cpus-per-task=16
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=%x-%A_%a.log
#SBATCH --requeue
# For GPU nodes (a spectrain built with --features wgpu), add for example:
##SBATCH --gres=gpu:1
set -euo pipefail

SPECTRA=${SPECTRA:?set SPECTRA to the directory of FITS files}
MODEL=${MODEL:-models/dr10-teff-logg-feh}
OUT=${OUT:-out}
SPECTRAIN=${SPECTRAIN:-spectrain}
first=${SLURM_ARRAY_TASK_MIN:?run as a job array: sbatch --array=1-N}
N=$((SLURM_ARRAY_TASK_MAX - first + 1))
K=$((SLURM_ARRAY_TASK_ID - first + 1))
if [ "$N" != "${SLURM_ARRAY_TASK_COUNT:-}" ]; then
  echo "the array must be one contiguous range, e.g. --array=1-$N" >&2
  exit 2
fi

mkdir -p "$OUT/shards"
out=$OUT/shards/catalog-$(printf '%04d' "$K").csv
if [ -e "$out" ]; then
  echo "shard $K/$N: $out is complete"
  exit 0
fi
resume=()
[ -e "$out.partial" ] && resume=(--resume)
"$SPECTRAIN" -q -j "${SLURM_CPUS_PER_TASK:-1}" predict \
  --model "$MODEL" --spectra "$SPECTRA" --shard "$K/$N" --out "$out" "${resume[@]}"

#!/usr/bin/env bash
# Training a bootstrap ensemble on a Slurm cluster: one array task per member
# (`spectrain train --member K`), then one finishing job (`train --finish`)
# that scores the ensemble and writes metrics.json, curves.png and
# provenance.json. Pass the same train arguments to both; the array's size is
# the number of members (0-based, like the member-NN files):
#
#   args=(--data data/train.h5 --config models/densenet-bc.toml --out models/mine)
#   jid=$(sbatch --parsable --array=0-9 scripts/slurm/train-array.sh "${args[@]}")
#   sbatch --dependency=afterok:"$jid" --output=%x-%j.log scripts/slurm/train-array.sh "${args[@]}"
#
# Run as an array task, the script trains member SLURM_ARRAY_TASK_ID; run as a
# plain job, it finishes the run. Tasks always pass --resume: a preempted or
# requeued task continues its member from the last completed epoch (or skips
# it when it is done), and every task checks that the model directory's
# spec.json is its own, so a task given other data or settings is refused
# rather than mixed in. The result equals a single `spectrain train` with the
# same seed, file for file apart from timings. Logs go to the submission
# directory (Slurm opens them before the script runs).
#
#SBATCH --job-name=spectrain-train
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --output=%x-%A_%a.log
#SBATCH --requeue
# For GPU nodes (a spectrain built with --features wgpu), add for example:
##SBATCH --gres=gpu:1
set -euo pipefail

SPECTRAIN=${SPECTRAIN:-spectrain}
if [ $# -eq 0 ]; then
  echo "usage: sbatch --array=0-9 $0 --data DATA.h5 --out MODEL_DIR [train options]" >&2
  exit 2
fi

if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  exec "$SPECTRAIN" -q -j "${SLURM_CPUS_PER_TASK:-1}" train "$@" \
    --member "$SLURM_ARRAY_TASK_ID" --resume
else
  exec "$SPECTRAIN" -q -j "${SLURM_CPUS_PER_TASK:-1}" train "$@" --finish
fi

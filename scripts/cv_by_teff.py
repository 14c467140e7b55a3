#!/usr/bin/env python3
"""Out-of-fold MAE of `spectrain cv` runs, overall and by true Teff.

    python3 scripts/cv_by_teff.py DATA.h5 CV_DIR[:MODEL] [CV_DIR[:MODEL] ...]

MODEL is the name of a fold's prediction file (`densenet`, the default, or a
baseline such as `gbdt` or `rf`: CV_DIR/fold-NN/MODEL.json). Only the folds
every run has finished are scored, so a killed run is compared with the others
on the same stars. The label order is the dataset's; Teff must be the first
label (as in `prepare --labels` of the shared DR10 set). Needs h5py and numpy.
"""
import glob
import json
import os
import sys

import h5py
import numpy as np

BINS = [(0, 5500), (5500, 6000), (6000, 7000), (7000, 9000), (9000, np.inf)]


def folds(run):
    cv_dir, _, model = run.partition(":")
    out = {}
    for path in sorted(glob.glob(os.path.join(cv_dir, "fold-*", f"{model or 'densenet'}.json"))):
        with open(path) as f:
            j = json.load(f)
        rows = np.asarray(j["rows"])
        out[os.path.basename(os.path.dirname(path))] = (rows, np.asarray(j["mean"]).reshape(len(rows), -1))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with h5py.File(sys.argv[1], "r") as f:
        labels = f["labels"][:]
    runs = {run: folds(run) for run in sys.argv[2:]}
    common = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not common:
        sys.exit("no fold is finished in every run")
    print(f"folds: {', '.join(common)}")
    first = next(iter(runs.values()))
    rows = np.concatenate([first[k][0] for k in common])
    teff = labels[rows, 0]
    names = ["< 5,500 K" if lo == 0 else f"> {lo:,} K" if hi == np.inf else f"{lo:,}-{hi:,}" for lo, hi in BINS]
    head = [f"{n} ({((teff >= lo) & (teff < hi)).sum()})" for n, (lo, hi) in zip(names, BINS)]
    print("| run | MAE per label | " + " | ".join(head) + " |")
    print("|---|---|" + "---|" * len(BINS))
    for run, fs in runs.items():
        r = np.concatenate([fs[k][0] for k in common])
        if not np.array_equal(r, rows):
            sys.exit(f"{run}: its folds hold other rows than {sys.argv[2]}'s")
        err = np.abs(np.concatenate([fs[k][1] for k in common]) - labels[rows])
        per_bin = [err[(teff >= lo) & (teff < hi), 0].mean() for lo, hi in BINS]
        print(f"| {run} | {' / '.join(f'{v:.4g}' for v in err.mean(0))} | "
              + " | ".join(f"{v:.0f}" for v in per_bin) + " |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Split the reference preprocessing output into DEV and HOLD sets.

usage: split_reference.py REF.npz ASSETS_LABELS.csv DEV.npz HOLD.npz

REF.npz is the output of shared/reference/preprocess.py (keys X, files, obsid,
teff, logg, feh, snrg). HOLD is every row whose file basename appears in the
`file` column of ASSETS_LABELS.csv (the project's shipped hold-out set); DEV is
every other row. Both outputs keep all keys of REF.npz in the original row
order. `files` is written as a fixed-width unicode array, so the outputs load
without allow_pickle.
"""
import argparse
import csv
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('ref')
    ap.add_argument('labels_csv')
    ap.add_argument('dev_out')
    ap.add_argument('hold_out')
    a = ap.parse_args()

    with open(a.labels_csv, newline='') as fh:
        rd = csv.DictReader(fh)
        if 'file' not in (rd.fieldnames or []):
            sys.exit(f'{a.labels_csv}: no `file` column')
        hold_names = {os.path.basename(r['file'].strip()) for r in rd if r['file'].strip()}

    # preprocess.py (with pandas >= 3) may store `files` as an object array.
    d = np.load(a.ref, allow_pickle=True)
    data = {k: d[k] for k in d.files}
    if 'files' not in data:
        sys.exit(f'{a.ref}: no `files` key')
    files = np.array([os.path.basename(str(f)) for f in data['files']])
    data['files'] = files.astype(str)
    n = len(files)
    for k, v in data.items():
        if len(v) != n:
            sys.exit(f'{a.ref}: key {k} has {len(v)} rows, files has {n}')
    if len(set(files)) != n:
        print(f'warning: {n - len(set(files))} duplicate file names in {a.ref}', file=sys.stderr)

    is_hold = np.array([f in hold_names for f in files], dtype=bool)
    missing = sorted(hold_names - set(files[is_hold]))

    for path, mask in ((a.dev_out, ~is_hold), (a.hold_out, is_hold)):
        np.savez_compressed(path, **{k: v[mask] for k, v in data.items()})

    print(f'ref rows {n}; hold-out names in {os.path.basename(a.labels_csv)}: {len(hold_names)}')
    print(f'DEV  {int((~is_hold).sum())} -> {a.dev_out}')
    print(f'HOLD {int(is_hold.sum())} -> {a.hold_out}')
    print(f'hold-out names absent from REF (dropped by preprocessing or not in it): {len(missing)}')
    for m in missing:
        print(f'  {m}')


if __name__ == '__main__':
    main()

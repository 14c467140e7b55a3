#!/usr/bin/env python3
"""MAE of an ensemble's first n members, n = 1..M, from one catalog.

    python3 scripts/subensembles.py CATALOG.csv LABELS.csv

CATALOG.csv is `spectrain predict --members-out` output (columns
`<label>_mNN`); LABELS.csv the labels file given to `prepare`, joined on the
file name. Members are seeded by their index, so the first n members of an
M-member ensemble are the n-member ensemble of the same recipe: one training
run answers "how many members?". Also prints the catalog's own ensemble MAE
and the fraction of errors within 1 and 2 of its `<label>_std`. Rows that
were not predicted, or have no label, are skipped (and counted).
"""
import csv
import os
import re
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[2], newline="") as f:
        truth = {os.path.basename(r["file"]): r for r in csv.DictReader(f)}
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [c[: -len("_m00")] for c in rows[0] if c.endswith("_m00")]
    members = [int(c[-2:]) for c in rows[0] if re.fullmatch(re.escape(labels[0]) + r"_m\d\d", c)]
    kept = [r for r in rows if r["status"] == "ok" and os.path.basename(r["file"]) in truth]
    print(f"{len(kept)} rows scored, {len(rows) - len(kept)} skipped; labels {', '.join(labels)}; {len(members)} members")
    y = np.array([[float(truth[os.path.basename(r["file"])][l]) for l in labels] for r in kept])
    each = np.array([[[float(r[f"{l}_m{i:02d}"]) for l in labels] for i in members] for r in kept])
    for n in range(1, len(members) + 1):
        mae = np.abs(each[:, :n].mean(1) - y).mean(0)
        print(f"first {n} members: MAE " + " / ".join(f"{v:.4g}" for v in mae))
    mean = np.array([[float(r[l]) for l in labels] for r in kept])
    std = np.array([[float(r[f"{l}_std"]) for l in labels] for r in kept])
    err = np.abs(mean - y)
    print("catalog: MAE " + " / ".join(f"{v:.4g}" for v in err.mean(0))
          + "; within 1 std " + " / ".join(f"{v:.3f}" for v in (err <= std).mean(0))
          + "; within 2 std " + " / ".join(f"{v:.3f}" for v in (err <= 2 * std).mean(0)))


if __name__ == "__main__":
    main()

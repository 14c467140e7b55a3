#!/usr/bin/env python3
"""Golden values for finetune's input-space anchor pool (tests/finetune.rs).

    python3 scripts/make_anchor_golden.py   # writes tests/fixtures/anchor_golden.json

Independent numpy implementation of the rule documented in
src/train/finetune.rs (`AnchorPool::outside_inputs`), on real rows of
assets/tables/dh_postzams.csv: inputs (log_teff, log_l) standardised with the
mean and std of all complete rows; the "new set" is every complete row with
3.9 <= log_teff < 4.0 (the middle of the DH domain), the candidates are all
the others. For k = min(5, n_new - 1):
  own_i   = distance of new row i to its k-th nearest *other* new row
  radius  = own sorted, element round((n_own - 1) * 0.9)
  d_c     = distance of candidate c to its k-th nearest new row
  pool    = candidates with d_c > radius (in candidate order)
Distances are computed in float64 from float32 inputs, as the Rust code does.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
K, QUANTILE = 5, 0.9


def main():
    d = pd.read_csv(ROOT / "assets/tables/dh_postzams.csv").dropna(subset=["log_teff", "log_l"])
    x = d[["log_teff", "log_l"]].to_numpy(np.float64)
    z = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    new = np.flatnonzero((d["log_teff"] >= 3.9) & (d["log_teff"] < 4.0))
    cand = np.setdiff1d(np.arange(len(z)), new)
    zz = z.astype(np.float64)
    k = max(1, min(K, len(new) - 1))
    dn = np.sqrt(((zz[new][:, None, :] - zz[new][None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dn, np.inf)
    own = np.sort(np.sort(dn, 1)[:, k - 1])
    radius = own[int(round((len(own) - 1) * QUANTILE))]
    dc = np.sqrt(((zz[cand][:, None, :] - zz[new][None, :, :]) ** 2).sum(-1))
    far = np.sort(dc, 1)[:, k - 1]
    pool = cand[far > radius]
    out = {
        "source": "assets/tables/dh_postzams.csv complete rows; scripts/make_anchor_golden.py (numpy)",
        "inputs": z.ravel().tolist(),
        "per": 2,
        "new_rows": new.tolist(),
        "candidates": cand.tolist(),
        "radius": float(radius),
        "pool": pool.tolist(),
    }
    path = ROOT / "tests/fixtures/anchor_golden.json"
    path.write_text(json.dumps(out))
    print(f"{path}: {len(z)} rows, {len(new)} new, {len(cand)} candidates, radius {radius:.4f}, pool {len(pool)}")


if __name__ == "__main__":
    main()

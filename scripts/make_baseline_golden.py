#!/usr/bin/env python3
"""Golden values for `spectrain baseline --method linear`: scikit-learn ridge
regression on standardised inputs (StandardScaler, then Ridge with an
intercept), on real rows of assets/tables/dh_postzams.csv.

    python3 scripts/make_baseline_golden.py   -> tests/fixtures/ridge_golden.json

Two cases: more rows than inputs (spectrain uses smartcore's solver) and fewer
rows than inputs (spectrain solves the dual problem, as for 4096-pixel spectra).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
FEATURES_WIDE = ["log_teff", "log_l", "logg", "teff_err", "logg_err", "log_age_68lo",
                 "log_age_68up", "log_mass_68lo", "log_mass_68up", "teff"]


def case(d, features, train, test, alpha):
    xt = d[features].iloc[train].to_numpy(np.float64)
    yt = d["log_mass"].iloc[train].to_numpy(np.float64)
    xv = d[features].iloc[test].to_numpy(np.float64)
    # float32 inputs, as spectrain stores them
    xt, yt, xv = (a.astype(np.float32).astype(np.float64) for a in (xt, yt, xv))
    m = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(xt, yt)
    return {
        "features": features,
        "alpha": alpha,
        "x_train": xt.tolist(),
        "y_train": yt.tolist(),
        "x_test": xv.tolist(),
        "predicted": m.predict(xv).tolist(),
    }


def main():
    d = pd.read_csv(ROOT / "assets/tables/dh_postzams.csv")
    d = d.dropna(subset=FEATURES_WIDE + ["log_mass"]).reset_index(drop=True)
    out = {
        "source": "assets/tables/dh_postzams.csv, complete rows; sklearn "
                  "StandardScaler + Ridge(alpha), fit_intercept=True",
        "primal": case(d, ["log_teff", "log_l"], range(0, 300), range(300, 350), 1.0),
        "dual": case(d, FEATURES_WIDE, range(0, 8), range(300, 320), 0.5),
    }
    path = ROOT / "tests/fixtures/ridge_golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

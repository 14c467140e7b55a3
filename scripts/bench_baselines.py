#!/usr/bin/env python3
"""Fit time of scikit-learn / XGBoost baselines with the settings of
`spectrain baseline`, for scripts/bench.sh (same data, same machine, same run).

    bench_baselines.py DATA.h5 --method rf|gbdt|linear [--threads N] [--trees 200] [--rounds 300]

Reads the dataset written by `spectrain prepare` with h5py, fits one model per
label on a seeded 80% of the rows (the size of spectrain's training split; not
the same rows) and prints the wall time of fitting and predicting the rest.
Matched settings: RF with max_features=1/3 and min_samples_leaf=1; XGBoost
hist with max_depth 6, learning rate 0.1, subsample 0.8, colsample_bytree 0.3
for spectra (1.0 for tables), max_bin 64; ridge on standardised inputs with
alpha chosen from the same grid on an inner 80/20 split.
"""
import argparse
import time

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--method", required=True, choices=["rf", "gbdt", "linear"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=300)
    a = ap.parse_args()
    with h5py.File(a.data, "r") as f:
        x = f["inputs"][:].reshape(len(f["inputs"]), -1)
        y = f["labels"][:]
    rng = np.random.default_rng(42)
    idx = rng.permutation(len(x))
    n_val = int(round(0.2 * len(x)))
    tr, va = idx[n_val:], idx[:n_val]
    f = x.shape[1]
    t0 = time.perf_counter()
    for j in range(y.shape[1]):
        if a.method == "rf":
            from sklearn.ensemble import RandomForestRegressor
            m = RandomForestRegressor(n_estimators=a.trees, max_features=1 / 3,
                                      n_jobs=a.threads, random_state=0)
        elif a.method == "gbdt":
            from xgboost import XGBRegressor
            m = XGBRegressor(n_estimators=a.rounds, max_depth=6, learning_rate=0.1,
                             subsample=0.8, colsample_bytree=0.3 if f > 64 else 1.0,
                             max_bin=64, tree_method="hist", n_jobs=a.threads, random_state=0)
        else:
            from sklearn.linear_model import RidgeCV
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
            from sklearn.model_selection import ShuffleSplit
            m = make_pipeline(StandardScaler(), RidgeCV(
                alphas=[1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5],
                cv=ShuffleSplit(n_splits=1, test_size=0.2, random_state=0)))
        m.fit(x[tr], y[tr, j])
        m.predict(x[va])
    print(f"{time.perf_counter() - t0:.3f}")


if __name__ == "__main__":
    main()

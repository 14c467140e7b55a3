#!/usr/bin/env python3
"""Classical baselines on the same inputs and targets as the DenseNet.

usage: baselines.py DEV.npz HOLD.npz [--out JSON] [--only rf,xgb,mlp] [--threads N]

Inputs: the 4096-pixel preprocessed spectra in key X (as written by
shared/reference/preprocess.py and scripts/split_reference.py); targets teff,
logg, feh. Each model is fit on all of DEV and scored on HOLD (MAE, bias =
mean(pred - true), sigma = std(pred - true)).

- rf:  sklearn RandomForestRegressor(n_estimators=200, n_jobs, random_state=0),
       one multi-output forest on the raw targets.
- xgb: xgboost XGBRegressor per label (n_estimators=300, max_depth=6,
       learning_rate=0.1, n_jobs, random_state=0).
- mlp: sklearn MLPRegressor(hidden_layer_sizes=(256, 128), max_iter=300,
       early_stopping=True, random_state=0) on standardised targets (mean/std
       of DEV), predictions mapped back to physical units.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

LABELS = ['teff', 'logg', 'feh']


def load(path):
    d = np.load(path, allow_pickle=True)
    X = np.asarray(d['X'], dtype=np.float32).reshape(len(d['X']), -1)
    Y = np.stack([np.asarray(d[k], dtype=np.float64) for k in LABELS], 1)
    return X, Y


def metrics(pred, y):
    out = {}
    for i, k in enumerate(LABELS):
        e = pred[:, i] - y[:, i]
        out[k] = {'mae': float(np.mean(np.abs(e))), 'bias': float(np.mean(e)), 'sigma': float(np.std(e))}
    return out


def fit_rf(X, Y, Xh, threads):
    from sklearn.ensemble import RandomForestRegressor
    m = RandomForestRegressor(n_estimators=200, n_jobs=threads, random_state=0)
    m.fit(X, Y)
    return m.predict(Xh), {}


def fit_xgb(X, Y, Xh, threads):
    from xgboost import XGBRegressor
    cols = []
    for i in range(Y.shape[1]):
        m = XGBRegressor(n_estimators=300, max_depth=6, learning_rate=0.1, n_jobs=threads, random_state=0)
        m.fit(X, Y[:, i])
        cols.append(m.predict(Xh))
    return np.stack(cols, 1).astype(np.float64), {}


def fit_mlp(X, Y, Xh, threads):
    from sklearn.neural_network import MLPRegressor
    mu, sd = Y.mean(0), Y.std(0)
    m = MLPRegressor(hidden_layer_sizes=(256, 128), max_iter=300, early_stopping=True, random_state=0)
    m.fit(X, (Y - mu) / sd)
    return m.predict(Xh) * sd + mu, {'n_iter': int(m.n_iter_),
                                     'best_validation_score': float(m.best_validation_score_)}


MODELS = {'rf': ('RandomForestRegressor', fit_rf), 'xgb': ('XGBRegressor', fit_xgb), 'mlp': ('MLPRegressor', fit_mlp)}


def versions():
    v = {'numpy': np.__version__}
    for mod in ('sklearn', 'xgboost'):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dev')
    ap.add_argument('hold')
    ap.add_argument('--out', default=None, help='write results as JSON here')
    ap.add_argument('--only', default='rf,xgb,mlp', help='comma-separated subset of rf,xgb,mlp')
    ap.add_argument('--threads', type=int, default=2, help='n_jobs for rf and xgb (default 2)')
    a = ap.parse_args()

    # keep BLAS (used by the MLP) within the same thread budget
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
    except Exception:
        pass

    X, Y = load(a.dev)
    Xh, Yh = load(a.hold)
    print(f'DEV {X.shape} HOLD {Xh.shape}', flush=True)
    res = {'dev': os.path.abspath(a.dev), 'hold': os.path.abspath(a.hold), 'n_dev': len(X), 'n_hold': len(Xh),
           'versions': versions(), 'models': {}}
    for key in [s.strip() for s in a.only.split(',') if s.strip()]:
        if key not in MODELS:
            sys.exit(f'unknown model {key}; choose from {",".join(MODELS)}')
        name, fit = MODELS[key]
        t0 = time.time()
        pred, extra = fit(X, Y, Xh, a.threads)
        dt = time.time() - t0
        m = metrics(pred, Yh)
        res['models'][key] = {'model': name, 'fit_predict_seconds': dt, 'holdout': m, **extra}
        line = '  '.join(f"{k} mae {m[k]['mae']:.4g} bias {m[k]['bias']:+.4g} sigma {m[k]['sigma']:.4g}" for k in LABELS)
        print(f'{key:4s} ({dt:7.1f} s)  {line}', flush=True)
        if a.out:  # write after each model so a long run leaves partial results
            with open(a.out, 'w') as fh:
                json.dump(res, fh, indent=1)
    if a.out:
        print(f'wrote {a.out}')


if __name__ == '__main__':
    main()

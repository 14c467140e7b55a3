#!/usr/bin/env python3
"""Throughput of the independent PyTorch reference network (DenseNetBC1d).

usage: bench_torch.py [--threads 2] [--device cpu|cuda] [--seconds 5]
                      [--train-batches 64] [--infer-batches 256]
                      [--reference-dir DIR] [--json FILE]

Imports DenseNetBC1d from DIR/densenet_ref.py (default: ../shared/reference
relative to the repository root) and measures, on random inputs of shape
[batch, 64, 64] with n_out=3 and the reference's default architecture:

- train_batch64:  spectra/s through forward + Huber loss (delta 1) + backward
                  + Adam step at batch 64 (model.train()); 3 warm-up steps, then
                  steps are timed until at least --seconds have passed.
- infer_batch256: spectra/s of model.eval() forward at batch 256 under
                  torch.no_grad(); 3 warm-up passes, then timed the same way.

Prints `torch train_batch64 <spectra/s>` and `torch infer_batch256 <spectra/s>`
(one line per batch size given with --train-batches / --infer-batches).
On --device cuda, torch.cuda.synchronize() brackets every timed region.
"""
import argparse
import json
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REF = os.path.normpath(os.path.join(REPO, '..', 'shared', 'reference'))


def timed_loop(step, sync, min_seconds, warmup=3):
    for _ in range(warmup):
        step()
    sync()
    n = 0
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        sync()  # no-op on CPU; on CUDA waits for the step to finish before reading the clock
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--seconds', type=float, default=5.0, help='minimum timed seconds per measurement')
    ap.add_argument('--reference-dir', default=DEFAULT_REF, help=f'directory holding densenet_ref.py (default {DEFAULT_REF})')
    ap.add_argument('--json', default=None, help='write the measurements here')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--train-batches', default='64', help='comma-separated training batch sizes')
    ap.add_argument('--infer-batches', default='256', help='comma-separated inference batch sizes')
    a = ap.parse_args()

    ref_py = os.path.join(a.reference_dir, 'densenet_ref.py')
    if not os.path.isfile(ref_py):
        sys.exit(f'no densenet_ref.py in {a.reference_dir} (use --reference-dir)')
    sys.path.insert(0, os.path.abspath(a.reference_dir))
    import torch
    import torch.nn.functional as F
    from densenet_ref import DenseNetBC1d

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.device == 'cuda':
        if not torch.cuda.is_available():
            sys.exit('--device cuda: torch.cuda.is_available() is False')
        dev = torch.device('cuda')
        sync = torch.cuda.synchronize
        dev_name = torch.cuda.get_device_name(0)
    else:
        dev = torch.device('cpu')
        sync = lambda: None
        dev_name = platform.processor() or platform.machine()

    model = DenseNetBC1d(n_out=3).to(dev)
    params = sum(p.numel() for p in model.parameters())
    results = {}

    # training: forward + Huber + backward + Adam
    opt = torch.optim.Adam(model.parameters(), lr=1.5e-4)
    for bt in [int(b) for b in a.train_batches.split(',')]:
        xb = torch.randn(bt, 64, 64, device=dev)
        yb = torch.randn(bt, 3, device=dev)
        model.train()

        def train_step():
            loss = F.huber_loss(model(xb), yb, delta=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()

        n, dt = timed_loop(train_step, sync, a.seconds)
        results[f'train_batch{bt}'] = {'spectra_per_s': n * bt / dt, 'steps': n, 'seconds': dt}
        print(f"torch train_batch{bt} {n * bt / dt:.1f}", flush=True)

    # inference: eval forward under no_grad
    for bi in [int(b) for b in a.infer_batches.split(',')]:
        xi = torch.randn(bi, 64, 64, device=dev)
        model.eval()

        def infer_step():
            model(xi)

        with torch.no_grad():
            n, dt = timed_loop(infer_step, sync, a.seconds)
        results[f'infer_batch{bi}'] = {'spectra_per_s': n * bi / dt, 'steps': n, 'seconds': dt}
        print(f"torch infer_batch{bi} {n * bi / dt:.1f}", flush=True)

    if a.json:
        out = {'torch': torch.__version__, 'device': a.device, 'device_name': dev_name,
               'threads': torch.get_num_threads(), 'params': params,
               'reference': os.path.abspath(ref_py), 'min_seconds': a.seconds,
               'load_avg_1min': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
               **{k: v['spectra_per_s'] for k, v in results.items()}, 'detail': results}
        with open(a.json, 'w') as fh:
            json.dump(out, fh, indent=1)


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Golden learning rates for spectrain's cosine schedule (LrSchedule in
src/ensemble/spec.rs), from PyTorch's own schedulers.

Run from the repository root (needs torch):

    python3 scripts/make_schedule_golden.py

Writes tests/fixtures/lr_schedule_golden.json: for each case (peak lr, total
optimizer steps, warm-up steps) the learning rate of every step as PyTorch
applies it with

    SequentialLR(opt, [LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=warmup),
                       CosineAnnealingLR(opt, T_max=total - warmup, eta_min=0)],
                 milestones=[warmup])

stepped once per optimizer step (the rate read before each step), and the
plain cosine (no warm-up) with CosineAnnealingLR alone.
"""
import json

import torch


def rates(peak, total, warmup):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=peak)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=0.0)
    if warmup > 0:
        linear = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=0.01, end_factor=1.0, total_iters=warmup
        )
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], milestones=[warmup])
    else:
        sched = cosine
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


cases = []
for peak, total, warmup in [(1e-3, 3000, 150), (1e-3, 40, 0), (5e-4, 37, 5), (2e-3, 10, 9)]:
    cases.append({"peak": peak, "total": total, "warmup": warmup, "lr": rates(peak, total, warmup)})
with open("tests/fixtures/lr_schedule_golden.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(f"{len(cases)} cases written")

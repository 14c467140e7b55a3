#!/usr/bin/env python3
"""Golden values for spectrain's CPU convolution (src/model/conv.rs), from PyTorch.

Run from the repository root (needs torch and numpy):

    python3 scripts/make_conv_golden.py

Writes tests/fixtures/conv_golden.json. Each case is a 1D convolution with
'same' padding and stride 1, as the DenseNet uses it:

    y = torch.nn.functional.conv1d(x, w, b, padding='same')
    loss = (y * g).sum();  loss.backward()   ->  dx, dw, db

with x [batch, cin, length], w [cout, cin, kernel], b [cout] or none, and g
(the upstream gradient) [batch, cout, length]. Inputs are real: consecutive
values of the preprocessed DR10 spectra stored in
tests/fixtures/preprocess_golden.json (the network's input pixels); w is
torch's default Conv1d initialisation (seeded), b and g are seeded normals.
Inputs are float32 and written as the shortest decimal that round-trips to
that float32; the reference outputs are computed in float64 from those exact
float32 inputs, so they are the true values the float32 op approximates.
Shapes cover kernel 15 (also longer than the input), batch 1, odd lengths,
one input channel, one output channel, 1x1 with bias and the network's stem.

Batch norm + ReLU (src/model/norm.rs), one case per shape above on its x with
channels scaled and shifted apart (x * (1 + c) - 0.3 c), gamma = 0.5 + c / C,
beta = 0.1 - 0.2 c / C, upstream gradient x - 0.5 (x before the shift):

    y = relu(torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5))

in float64, with gradients of sum(y * grad_output) for x, gamma and beta, and
the batch mean and biased variance (what burn's running statistics use).

It also records the forward FLOPs per spectrum of the independent PyTorch
reference network (../shared/reference/densenet_ref.py, DenseNetBC1d with 1, 2
and 3 outputs) as counted by torch.utils.flop_counter.FlopCounterMode (2 FLOPs
per multiply-add of convolutions and linear layers), the number `spectrain
bench` divides its GFLOP/s by.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, batch, cin, cout, length, kernel, bias
CASES = [
    ("stem_k3", 2, 64, 8, 64, 3, False),
    ("k15_batch1_odd_length", 1, 5, 3, 37, 15, False),
    ("k7_one_input_channel", 3, 1, 4, 29, 7, False),
    ("k1_bias_odd", 2, 6, 5, 33, 1, True),
    ("k15_longer_than_input", 2, 3, 2, 9, 15, False),
    ("k15_last_block_length16", 4, 48, 12, 16, 15, False),
    ("k3_one_output_channel_bias", 2, 7, 1, 21, 3, True),
]


def f32_list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def main():
    pre = json.load(open(os.path.join(REPO, "tests/fixtures/preprocess_golden.json")))
    pixels = np.concatenate(
        [np.asarray(f["output"], dtype=np.float32) for f in pre["files"] if f["status"] == "ok"]
    )
    torch.manual_seed(12)
    offset = 0
    cases = []
    norm_cases = []
    for name, batch, cin, cout, length, kernel, bias in CASES:
        n = batch * cin * length
        x32 = pixels[offset:offset + n].reshape(batch, cin, length)
        offset += n
        conv = torch.nn.Conv1d(cin, cout, kernel, padding="same", bias=bias)
        w32 = conv.weight.detach().numpy().astype(np.float32)
        b32 = torch.randn(cout).numpy().astype(np.float32) if bias else None
        g32 = torch.randn(batch, cout, length).numpy().astype(np.float32)

        x = torch.tensor(x32, dtype=torch.float64, requires_grad=True)
        w = torch.tensor(w32, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(b32, dtype=torch.float64, requires_grad=True) if bias else None
        y = F.conv1d(x, w, b, padding="same")
        (y * torch.tensor(g32, dtype=torch.float64)).sum().backward()
        case = {
            "name": name, "batch": batch, "cin": cin, "cout": cout,
            "length": length, "kernel": kernel,
            "x": f32_list(x32), "weight": f32_list(w32),
            "bias": f32_list(b32) if bias else None,
            "grad_output": f32_list(g32),
            "y": y.detach().numpy().ravel().tolist(),
            "grad_x": x.grad.numpy().ravel().tolist(),
            "grad_weight": w.grad.numpy().ravel().tolist(),
            "grad_bias": b.grad.numpy().ravel().tolist() if bias else None,
        }
        cases.append(case)

        ch = (np.arange(n) // length) % cin
        xb32 = (x32.ravel() * (1.0 + ch).astype(np.float32)
                - np.float32(0.3) * ch.astype(np.float32)).astype(np.float32)
        gb32 = (x32.ravel() - np.float32(0.5)).astype(np.float32)
        gamma32 = np.array([0.5 + i / cin for i in range(cin)], dtype=np.float32)
        beta32 = np.array([0.1 - 0.2 * i / cin for i in range(cin)], dtype=np.float32)
        xb = torch.tensor(xb32.reshape(batch, cin, length), dtype=torch.float64, requires_grad=True)
        gamma = torch.tensor(gamma32, dtype=torch.float64, requires_grad=True)
        beta = torch.tensor(beta32, dtype=torch.float64, requires_grad=True)
        yb = F.relu(F.batch_norm(xb, None, None, gamma, beta, training=True, eps=1e-5))
        (yb * torch.tensor(gb32.reshape(batch, cin, length), dtype=torch.float64)).sum().backward()
        xd = xb.detach()
        norm_cases.append({
            "name": name, "batch": batch, "channels": cin, "length": length,
            "x": f32_list(xb32), "gamma": f32_list(gamma32), "beta": f32_list(beta32),
            "grad_output": f32_list(gb32),
            "y": yb.detach().numpy().ravel().tolist(),
            "grad_x": xb.grad.numpy().ravel().tolist(),
            "grad_gamma": gamma.grad.numpy().ravel().tolist(),
            "grad_beta": beta.grad.numpy().ravel().tolist(),
            "mean": xd.mean(dim=(0, 2)).numpy().tolist(),
            "variance": xd.var(dim=(0, 2), unbiased=False).numpy().tolist(),
        })
    flops = {}
    ref_dir = os.path.join(REPO, "..", "shared", "reference")
    if os.path.isfile(os.path.join(ref_dir, "densenet_ref.py")):
        import sys
        from torch.utils.flop_counter import FlopCounterMode
        sys.path.insert(0, os.path.abspath(ref_dir))
        from densenet_ref import DenseNetBC1d
        for outputs in (1, 2, 3):
            net = DenseNetBC1d(n_out=outputs).eval()
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                net(torch.zeros(1, 64, 64))
            flops[str(outputs)] = counter.get_total_flops()
    out = {
        "densenet_forward_flops_per_spectrum": flops,
        "source": f"torch {torch.__version__} torch.nn.functional.conv1d(x, w, b, padding='same') "
                  "in float64 on float32 inputs; gradients of sum(y * grad_output)",
        "cases": cases,
        "batch_norm_relu_cases": norm_cases,
    }
    path = os.path.join(REPO, "tests/fixtures/conv_golden.json")
    with open(path + ".partial", "w") as fh:
        json.dump(out, fh)
    os.replace(path + ".partial", path)
    print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()

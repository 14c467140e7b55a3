//! Throughput of the network on a device: training steps (forward, Huber loss,
//! backward, Adam) and inference, in spectra per second, with the cores actually
//! used (CPU time / wall time of the timed region) and the GFLOP/s achieved (the
//! network's forward FLOPs from its config; a training step counted as 3 forwards).
//! Also the machine's GEMM GFLOP/s on the network's shapes: the compute ceiling.
//! Used by `scripts/bench.sh`.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::{HuberLossConfig, Reduction};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use crate::model::{ComputeDevice, DenseNetConfig};

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub backend: String,
    /// Forward FLOPs per spectrum (`DenseNetConfig::forward_flops`).
    pub forward_flops_per_spectrum: u64,
    pub train_batch: usize,
    pub train_spectra_per_s: f64,
    /// Process CPU time / wall time while training was timed.
    pub train_cores: f64,
    /// `3 * forward FLOPs * spectra/s`.
    pub train_gflops: f64,
    pub infer_batch: usize,
    pub infer_spectra_per_s: f64,
    pub infer_cores: f64,
    pub infer_gflops: f64,
    /// Seconds of the first training step and the first inference call: on a
    /// GPU they include shader compilation and autotune's one-off tuning.
    pub first_train_step_s: f64,
    pub first_infer_s: f64,
}

/// Calls per second of a timed region, the cores it kept busy, and how long
/// the very first call took (on a GPU: kernel compilation and autotune's
/// one-off tuning).
struct Rate {
    per_s: f64,
    cores: f64,
    first_s: f64,
}

/// User + system CPU seconds of this process so far, all threads.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `f` repeatedly for at least `min` after `warmup` calls.
fn rate(warmup: usize, min: Duration, mut f: impl FnMut()) -> Rate {
    let t_first = Instant::now();
    f();
    let first_s = t_first.elapsed().as_secs_f64();
    for _ in 1..warmup {
        f();
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut calls = 0usize;
    while t0.elapsed() < min {
        f();
        calls += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    Rate {
        per_s: calls as f64 / wall,
        cores: (cpu_seconds() - cpu0) / wall,
        first_s,
    }
}

/// The machine's f32 GEMM throughput in GFLOP/s on the network's convolutions
/// written as im2col products (`[cout, cin * k] @ [cin * k, chunk * length]`, the
/// GEMM's best shapes for these layers; `src/model/conv.rs` runs one GEMM per
/// tap, `[cout, cin] @ [cin, rows]`), one GEMM per rayon thread at a time, for
/// at least `min`.
/// Returns GFLOP/s and the cores kept busy meanwhile.
pub fn gemm_gflops(min: Duration) -> (f64, f64) {
    use rayon::prelude::*;
    // (m, k, n): a k = 15 branch, a k = 7 branch, a bottleneck and a transition of
    // the first block, at 32 spectra of 64 pixels per chunk.
    const SHAPES: [(usize, usize, usize); 4] = [
        (12, 48 * 15, 2048),
        (12, 48 * 7, 2048),
        (48, 156, 2048),
        (76, 192, 2048),
    ];
    let threads = rayon::current_num_threads().max(1);
    let flops_per_round: f64 = SHAPES
        .iter()
        .map(|&(m, k, n)| 2.0 * (m * k * n) as f64)
        .sum::<f64>()
        * threads as f64;
    // Per thread and shape: lhs, rhs, dst.
    type Operands = (Vec<f32>, Vec<f32>, Vec<f32>);
    let mut work: Vec<Vec<Operands>> = (0..threads)
        .map(|t| {
            SHAPES
                .iter()
                .map(|&(m, k, n)| {
                    let lhs = (0..m * k).map(|i| ((i + t) % 7) as f32 * 0.1).collect();
                    let rhs = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
                    (lhs, rhs, vec![0.0f32; m * n])
                })
                .collect()
        })
        .collect();
    let rounds = rate(1, min, || {
        work.par_iter_mut().for_each(|operands| {
            for (&(m, k, n), (lhs, rhs, dst)) in SHAPES.iter().zip(operands.iter_mut()) {
                crate::model::conv::gemm_into(
                    m,
                    n,
                    k,
                    dst,
                    lhs,
                    (1, k as isize),
                    rhs,
                    (1, n as isize),
                    false,
                );
                std::hint::black_box(&dst);
            }
        })
    });
    (rounds.per_s * flops_per_round / 1e9, rounds.cores)
}

/// Measures the paper's network with `outputs` labels on `compute`.
pub fn measure(
    compute: &ComputeDevice,
    outputs: usize,
    train_batch: usize,
    infer_batch: usize,
    min: Duration,
) -> Throughput {
    crate::model::on_compute_pool(&compute.device, || {
        measure_here(compute, outputs, train_batch, infer_batch, min)
    })
}

fn measure_here(
    compute: &ComputeDevice,
    outputs: usize,
    train_batch: usize,
    infer_batch: usize,
    min: Duration,
) -> Throughput {
    let config = DenseNetConfig {
        outputs,
        ..Default::default()
    };
    let ad = compute.autodiff();
    ad.seed(0);
    let mut model = Some(config.init(&ad));
    let mut optim = AdamConfig::new().init();
    let x = Tensor::<3>::random([train_batch, 64, 64], Distribution::Default, &ad);
    let y = Tensor::<2>::random([train_batch, outputs], Distribution::Default, &ad);
    let huber = HuberLossConfig::new(1.0).init();
    let train = rate(3, min, || {
        let m = model.take().expect("model");
        let loss = huber.forward(m.forward(x.clone()), y.clone(), Reduction::Mean);
        // Reading the loss forces the step to finish on asynchronous devices.
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(1e-4, m, grads));
    });
    let valid = model.take().expect("model").valid();
    let device: &Device = &compute.device;
    let xi = Tensor::<3>::random([infer_batch, 64, 64], Distribution::Default, device);
    let infer = rate(2, min, || {
        let out = valid.forward(xi.clone());
        let _ = out.into_data();
    });
    let flops = config.forward_flops();
    let train_spectra_per_s = train.per_s * train_batch as f64;
    let infer_spectra_per_s = infer.per_s * infer_batch as f64;
    Throughput {
        backend: compute.backend.to_string(),
        forward_flops_per_spectrum: flops,
        train_batch,
        train_spectra_per_s,
        train_cores: train.cores,
        train_gflops: 3.0 * flops as f64 * train_spectra_per_s / 1e9,
        infer_batch,
        infer_spectra_per_s,
        infer_cores: infer.cores,
        infer_gflops: flops as f64 * infer_spectra_per_s / 1e9,
        first_train_step_s: train.first_s,
        first_infer_s: infer.first_s,
    }
}

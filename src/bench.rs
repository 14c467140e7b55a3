//! Throughput of the network on a device: training steps (forward, Huber loss,
//! backward, Adam) and inference, in spectra per second. Used by `scripts/bench.sh`.

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
    pub train_batch: usize,
    pub train_spectra_per_s: f64,
    pub infer_batch: usize,
    pub infer_spectra_per_s: f64,
}

/// Runs `f` repeatedly for at least `min` after `warmup` calls; returns calls per second.
fn rate(warmup: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let t0 = Instant::now();
    let mut calls = 0usize;
    while t0.elapsed() < min {
        f();
        calls += 1;
    }
    calls as f64 / t0.elapsed().as_secs_f64()
}

/// Measures the paper's network with `outputs` labels on `compute`.
pub fn measure(
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
    let train_steps = rate(3, min, || {
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
    let infer_calls = rate(2, min, || {
        let out = valid.forward(xi.clone());
        let _ = out.into_data();
    });
    Throughput {
        backend: compute.backend.to_string(),
        train_batch,
        train_spectra_per_s: train_steps * train_batch as f64,
        infer_batch,
        infer_spectra_per_s: infer_calls * infer_batch as f64,
    }
}

//! One test body per backend (issue 13): the CPU backend always, wgpu when built
//! with `--features wgpu` (in CI on Mesa's software Vulkan, lavapipe, so the
//! GPU code path runs on every commit).
//!
//! - The shipped model's catalog of the `assets/` spectra equals the CPU
//!   backend's within float tolerance.
//! - A few training steps from the same initial weights give a finite,
//!   falling loss, and the first step's loss equals the CPU backend's.

mod common;

use std::path::Path;

use burn::nn::loss::{HuberLossConfig, Reduction};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use spectrain::model::{BackendChoice, ModelConfig};

fn catalog(backend: &str, out: &Path) -> Vec<Vec<String>> {
    let status = spectrain()
        .args(["-q", "predict", "--backend", backend, "--model"])
        .arg(repo().join("models/dr10-teff-logg-feh"))
        .arg("--spectra")
        .arg(repo().join("assets/spectra"))
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "predict on {backend}");
    csv::Reader::from_path(out)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Every text cell equal; every number within 1e-4 of its column's RMS
/// (plus 1e-5): float32 networks on two backends sum in different orders,
/// and a member spread of a few kelvin is a difference of large numbers.
fn shipped_catalog_matches_cpu(backend: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = catalog("cpu", &tmp.path().join("cpu.csv"));
    let other = catalog(backend, &tmp.path().join("other.csv"));
    assert_eq!(cpu.len(), 300);
    assert_eq!(other.len(), cpu.len());
    let columns = cpu[0].len();
    for c in 0..columns {
        let values: Vec<f64> = cpu.iter().filter_map(|r| r[c].parse().ok()).collect();
        let rms = (values.iter().map(|v| v * v).sum::<f64>() / values.len().max(1) as f64).sqrt();
        let tol = 1e-4 * rms + 1e-5;
        let mut worst = 0f64;
        for (a, b) in cpu.iter().zip(&other) {
            match (a[c].parse::<f64>(), b[c].parse::<f64>()) {
                (Ok(u), Ok(v)) => {
                    worst = worst.max((u - v).abs());
                    assert!(
                        (u - v).abs() <= tol,
                        "column {c}: {u} vs {v} (tolerance {tol:e}) in {a:?}"
                    );
                }
                _ => assert_eq!(a[c], b[c], "{a:?}"),
            }
        }
        if !values.is_empty() {
            eprintln!("{backend}: column {c}: largest difference from the CPU {worst:e} (tolerance {tol:e})");
        }
    }
}

/// Losses of `steps` Adam steps of the tiny network, starting from weights
/// initialised on the CPU with a fixed seed and loaded on `backend`.
fn first_losses(backend: BackendChoice, steps: usize) -> Vec<f32> {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let data = spectrain::Dataset::read(&real_dataset(tmp.path())).unwrap();
    let config = ModelConfig::Densenet(spectrain::model::DenseNetConfig {
        outputs: 3,
        ..tiny_network()
    });
    let cpu = Device::flex();
    cpu.seed(11);
    let weights = tmp.path().join("init.bpk");
    config.init(&cpu).save(&weights).unwrap();
    let compute = backend.resolve().unwrap();
    let ad = compute.autodiff();
    let mut model = config.load(&weights, &ad).unwrap();
    let n = data.len().min(8);
    let x = Tensor::<2>::from_data(
        TensorData::new(data.inputs[..n * 4096].to_vec(), [n, 4096]),
        &ad,
    );
    // Labels scaled to about unit size.
    let y: Vec<f32> = (0..n)
        .flat_map(|i| {
            let l = data.label_row(i);
            [(l[0] - 6500.0) / 1500.0, (l[1] - 4.0) / 0.5, l[2] / 0.5]
        })
        .collect();
    let y = Tensor::<2>::from_data(TensorData::new(y, [n, 3]), &ad);
    let mut optim = AdamConfig::new().init();
    let huber = HuberLossConfig::new(1.0).init();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = huber.forward(model.forward(x.clone()), y.clone(), Reduction::Mean);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    losses
}

fn training_steps_are_finite_falling_and_agree_with_cpu(backend: BackendChoice) {
    let losses = first_losses(backend, 6);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < losses[0], "the loss falls: {losses:?}");
    let cpu = first_losses(BackendChoice::Cpu, 1);
    let d = (losses[0] - cpu[0]).abs() / cpu[0].abs();
    assert!(d < 1e-4, "first-step loss {} vs CPU {}", losses[0], cpu[0]);
}

macro_rules! on_backend {
    ($($catalog:ident, $steps:ident: $backend:expr, $name:literal, $enabled:meta;)*) => {$(
        #[test]
        #[cfg_attr(not($enabled), ignore = "backend not compiled in")]
        fn $catalog() {
            shipped_catalog_matches_cpu($name);
        }

        #[test]
        #[cfg_attr(not($enabled), ignore = "backend not compiled in")]
        fn $steps() {
            training_steps_are_finite_falling_and_agree_with_cpu($backend);
        }
    )*};
}

on_backend! {
    catalog_on_cpu, training_steps_on_cpu: BackendChoice::Cpu, "cpu", all();
    catalog_on_wgpu, training_steps_on_wgpu: BackendChoice::Wgpu, "wgpu", feature = "wgpu";
}

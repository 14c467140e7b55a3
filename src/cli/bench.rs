//! `spectrain bench`: training and inference throughput of the network.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::args::{at_least, positive, BackendArg};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    backend: BackendArg,
    /// Outputs of the network (3: Teff, log g, [Fe/H]).
    #[arg(long, default_value_t = 3, value_parser = at_least::<1>())]
    outputs: usize,
    #[arg(long, default_value_t = 64, value_parser = at_least::<2>())]
    train_batch: usize,
    #[arg(long, default_value_t = 256, value_parser = at_least::<1>())]
    infer_batch: usize,
    /// Seconds to time each measurement.
    #[arg(long, default_value_t = 5.0, value_parser = positive)]
    seconds: f64,
    /// Also write the numbers as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    let compute = a.backend.backend.open()?;
    let t = spectrain::bench::measure(
        &compute,
        a.outputs,
        a.train_batch,
        a.infer_batch,
        Duration::from_secs_f64(a.seconds),
    );
    // Third field: spectra/s (scripts/bench.sh reads it); then what the timed
    // region used: cores (CPU time / wall time) and GFLOP/s from the config.
    println!(
        "spectrain-{} train_batch{} {:.1} spectra/s  cores {:.2}  GFLOP/s {:.1}",
        t.backend, t.train_batch, t.train_spectra_per_s, t.train_cores, t.train_gflops
    );
    println!(
        "spectrain-{} infer_batch{} {:.1} spectra/s  cores {:.2}  GFLOP/s {:.1}",
        t.backend, t.infer_batch, t.infer_spectra_per_s, t.infer_cores, t.infer_gflops
    );
    println!(
        "spectrain-{} forward_flops_per_spectrum {}",
        t.backend, t.forward_flops_per_spectrum
    );
    // On a GPU the first calls compile shaders and run autotune's tuning.
    println!(
        "spectrain-{} first_train_step {:.3} s  first_infer {:.3} s",
        t.backend, t.first_train_step_s, t.first_infer_s
    );
    if compute.backend == "cpu" {
        // The compute ceiling: the machine's GEMM rate on the convolutions' shapes.
        let (gemm, cores) =
            spectrain::bench::gemm_gflops(Duration::from_secs_f64((a.seconds / 2.0).max(0.5)));
        println!("cpu gemm_ceiling {gemm:.1} GFLOP/s  cores {cores:.2}");
    }
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&t)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

//! Choosing the compute device at run time: wgpu (GPU) when compiled in and an
//! adapter exists, else burn's CPU backend `flex`. burn 0.22 has no implicit
//! fallback (`Device::default()` panics when a backend is missing), so it is here.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The user's `--backend` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// wgpu when a GPU adapter is found, else the CPU backend.
    Auto,
    /// burn's wgpu backend (Vulkan, Metal, DX12); needs the `wgpu` cargo feature.
    Wgpu,
    /// burn's pure-Rust CPU backend (flex).
    Cpu,
    /// burn's deprecated ndarray CPU backend; needs the `ndarray` cargo feature.
    Ndarray,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("spectrain was built without the `{0}` feature; rebuild with `cargo build --release --features {0}`")]
    NotCompiled(&'static str),
    #[error("no wgpu adapter: {0}")]
    NoAdapter(String),
}

/// A device ready for tensors, with the name and reason recorded in provenance.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    pub device: Device,
    /// `wgpu`, `cpu` (flex) or `ndarray`.
    pub backend: &'static str,
    /// Why this backend was chosen, for the log and the model's provenance.
    pub reason: String,
}

impl ComputeDevice {
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self {
            device: Device::flex(),
            backend: "cpu",
            reason: reason.into(),
        }
    }

    /// The same device with automatic differentiation, for training.
    pub fn autodiff(&self) -> Device {
        self.device.clone().autodiff()
    }
}

/// wgpu's runtime can be initialised once per process: remember the outcome.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, BackendError> {
    use std::sync::OnceLock;
    static WGPU: OnceLock<Result<Device, String>> = OnceLock::new();
    WGPU.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
        .clone()
        .map_err(BackendError::NoAdapter)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, BackendError> {
    Err(BackendError::NotCompiled("wgpu"))
}

impl BackendChoice {
    /// Resolves the choice to a device; `auto` never fails.
    pub fn resolve(self) -> Result<ComputeDevice, BackendError> {
        match self {
            BackendChoice::Cpu => Ok(ComputeDevice::cpu("requested with --backend cpu")),
            BackendChoice::Wgpu => Ok(ComputeDevice {
                device: wgpu_device()?,
                backend: "wgpu",
                reason: "requested with --backend wgpu".into(),
            }),
            BackendChoice::Ndarray => ndarray_device(),
            BackendChoice::Auto => Ok(match wgpu_device() {
                Ok(device) => ComputeDevice {
                    device,
                    backend: "wgpu",
                    reason: "auto: a wgpu adapter was found".into(),
                },
                Err(e) => ComputeDevice::cpu(format!("auto: {e}; using the CPU backend (flex)")),
            }),
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn ndarray_device() -> Result<ComputeDevice, BackendError> {
    Ok(ComputeDevice {
        device: Device::ndarray(),
        backend: "ndarray",
        reason: "requested with --backend ndarray".into(),
    })
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<ComputeDevice, BackendError> {
    Err(BackendError::NotCompiled("ndarray"))
}

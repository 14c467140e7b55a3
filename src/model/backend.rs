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

/// The GPU (or software rasteriser) behind a wgpu device, as the driver names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    /// PCI vendor and device ids.
    pub vendor: u32,
    pub device: u32,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software rasteriser such as llvmpipe) or `Other`.
    pub device_type: String,
    pub driver: String,
    /// The graphics API: `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub api: String,
}

impl Adapter {
    /// A software rasteriser (Mesa's llvmpipe/lavapipe, SwiftShader): slower than the CPU backend.
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }
}

impl std::fmt::Display for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {}, vendor 0x{:04x} device 0x{:04x})",
            self.name, self.device_type, self.api, self.driver, self.vendor, self.device
        )
    }
}

/// A device ready for tensors, with the name and reason recorded in provenance.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    pub device: Device,
    /// `wgpu`, `cpu` (flex) or `ndarray`.
    pub backend: &'static str,
    /// Why this backend was chosen, for the log and the model's provenance.
    pub reason: String,
    /// The wgpu adapter, when the backend is wgpu.
    pub adapter: Option<Adapter>,
}

impl ComputeDevice {
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self {
            device: Device::flex(),
            backend: "cpu",
            reason: reason.into(),
            adapter: None,
        }
    }

    /// The same device with automatic differentiation, for training.
    pub fn autodiff(&self) -> Device {
        self.device.clone().autodiff()
    }
}

/// wgpu's runtime can be initialised once per process: remember the outcome.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<(Device, Adapter), BackendError> {
    use std::sync::OnceLock;
    static WGPU: OnceLock<Result<(Device, Adapter), String>> = OnceLock::new();
    WGPU.get_or_init(|| {
        let (device, setup) = Device::wgpu_options()
            .init_with_setup()
            .map_err(|e| e.to_string())?;
        let info = setup.adapter.get_info();
        let adapter = Adapter {
            name: info.name.clone(),
            vendor: info.vendor,
            device: info.device,
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            api: format!("{:?}", info.backend),
        };
        Ok((device, adapter))
    })
    .clone()
    .map_err(BackendError::NoAdapter)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<(Device, Adapter), BackendError> {
    Err(BackendError::NotCompiled("wgpu"))
}

impl BackendChoice {
    /// Resolves the choice to a device; `auto` never fails.
    /// [`resolve`](Self::resolve), logging the backend chosen and why: what
    /// every command that runs a network does first.
    pub fn open(self) -> Result<ComputeDevice, BackendError> {
        let compute = self.resolve()?;
        tracing::info!("backend {} ({})", compute.backend, compute.reason);
        Ok(compute)
    }

    pub fn resolve(self) -> Result<ComputeDevice, BackendError> {
        match self {
            BackendChoice::Cpu => Ok(ComputeDevice::cpu("requested with --backend cpu")),
            BackendChoice::Wgpu => {
                let (device, adapter) = wgpu_device()?;
                Ok(ComputeDevice {
                    device,
                    backend: "wgpu",
                    reason: format!("requested with --backend wgpu; adapter {adapter}"),
                    adapter: Some(adapter),
                })
            }
            BackendChoice::Ndarray => ndarray_device(),
            BackendChoice::Auto => Ok(match wgpu_device() {
                // A software rasteriser is far slower than the CPU backend: never
                // chosen silently (--backend wgpu still uses it).
                Ok((_, adapter)) if adapter.is_software() => ComputeDevice::cpu(format!(
                    "auto: the only wgpu adapter is a software rasteriser ({adapter}); \
                     using the CPU backend (flex) instead (--backend wgpu forces it)"
                )),
                Ok((device, adapter)) => ComputeDevice {
                    device,
                    backend: "wgpu",
                    reason: format!("auto: wgpu adapter {adapter}"),
                    adapter: Some(adapter),
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
        adapter: None,
    })
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<ComputeDevice, BackendError> {
    Err(BackendError::NotCompiled("ndarray"))
}

//! Network architectures and the compute backends they run on.

pub mod backend;
pub mod conv;
pub mod densenet;
pub mod mlp;
pub mod network;
pub mod norm;
pub mod pool;

pub use backend::{BackendChoice, ComputeDevice};
pub use densenet::{DenseNet, DenseNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use network::{Arch, ModelConfig, Network};

/// Runs `f` on a thread of rayon's pool when `device` is the CPU backend's,
/// and returns its result; elsewhere just `f()` (a GPU's calls wait on the
/// device, not on rayon's threads).
///
/// The CPU kernels (`conv`, `norm`, `pool`, burn's own) split their work with
/// rayon. Called from outside the pool, each of the thousands of splits of a
/// training step queues its jobs and puts the calling thread to sleep until a
/// pool thread has run them: a wake-up and a context switch per op. Called from
/// a pool thread, the caller runs its share itself and the other threads steal
/// the rest. Only for pure computation: `f` must not wait on a thread that
/// itself waits for the pool (with one pool thread, that would never return).
pub fn on_compute_pool<R: Send>(device: &burn::tensor::Device, f: impl FnOnce() -> R + Send) -> R {
    if *device == burn::tensor::Device::flex() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

//! Network architectures and the compute backends they run on.

pub mod backend;
pub mod conv;
pub mod densenet;
pub mod mlp;
pub mod network;
pub mod norm;

pub use backend::{BackendChoice, ComputeDevice};
pub use densenet::{DenseNet, DenseNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use network::{Arch, ModelConfig, Network};

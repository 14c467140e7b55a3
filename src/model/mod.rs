//! Network architectures and the compute backends they run on.

pub mod backend;
pub mod densenet;

pub use backend::{BackendChoice, ComputeDevice};
pub use densenet::{DenseNet, DenseNetConfig};

//! spectrain: read LAMOST spectra, preprocess them as the published DenseNet
//! method does, and build model-ready datasets.
//!
//! Data flows one way through the layers: [`fits`] (file I/O) -> [`spectrum`]
//! -> [`preprocess`] -> [`dataset`] (HDF5), orchestrated by [`prepare`] and
//! [`inspect`].

// `!(x > y)` is used on purpose throughout: unlike `x <= y` it is true when
// either side is NaN, so bad values fall into the rejecting branch.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod atomic;
pub mod baseline;
pub mod bench;
pub mod catalog;
pub mod csvio;
pub mod dataset;
pub mod ensemble;
pub mod evaluate;
pub mod fits;
pub mod inspect;
pub mod lock;
pub mod metrics;
pub mod model;
pub mod model_dir;
pub mod outputs;
pub mod pathtext;
pub mod plot;
pub mod predict;
pub mod prepare;
pub mod preprocess;
pub mod progress;
pub mod spectrum;
pub mod table;
pub mod train;

pub use dataset::Dataset;
pub use preprocess::{PreprocessConfig, Preprocessor};
pub use spectrum::{Layout, Spectrum, SpectrumMeta};

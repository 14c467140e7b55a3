//! spectrain: read LAMOST spectra, preprocess them as the published DenseNet
//! method does, train bootstrap ensembles on them, and predict survey catalogs.
//!
//! Data flows one way through the layers: [`fits`] (file I/O) -> [`spectrum`]
//! -> [`preprocess`] -> [`dataset`] (HDF5, also from CSV tables via [`table`])
//! -> [`model`] (networks and backends) -> [`train`] and [`ensemble`] (with
//! the [`model_dir`] on disk) -> [`evaluate`], [`predict`] (catalogs, via
//! [`catalog`]) and [`baseline`]. [`prepare`] and [`inspect`] orchestrate the
//! first half; [`outputs`], [`lock`], [`csvio`] and [`pathtext`] are the
//! rules every command follows when it reads and writes files.

// `!(x > y)` is used on purpose throughout: unlike `x <= y` it is true when
// either side is NaN, so bad values fall into the rejecting branch.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod atomic;
pub mod baseline;
pub mod bench;
pub mod catalog;
pub mod csvio;
pub mod cv;
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

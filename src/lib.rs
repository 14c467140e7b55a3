//! spectrain: read LAMOST spectra, preprocess them as the published DenseNet
//! method does, train bootstrap ensembles on them (or on catalog tables),
//! and predict survey catalogs with uncertainties.
//!
//! The path a user takes, each step a function the `spectrain` command calls:
//! 1. **prepare**: [`prepare::prepare`] turns FITS spectra (each through
//!    [`ingest`], as `predict` reads them) and a label catalog into an HDF5
//!    [`Dataset`], [`table::prepare_table`] does the same for numeric CSV
//!    columns; [`inspect`] shows what preprocessing does to one file.
//! 2. **train**: [`train::train`] (or one member at a time,
//!    [`train::train_member`] then [`train::finish_members`]) writes a model
//!    directory ([`model_dir`]) that [`ensemble::Ensemble::load`] reads back;
//!    [`train::default_training`] holds the default settings, and
//!    [`cv::cv`] compares recipes (and the baselines) by K-fold
//!    cross-validation.
//! 3. **use the model**: [`predict::predict`] (spectra) and
//!    [`table::predict::predict_table`] (tables) write catalogs, sharded runs
//!    joined by [`predict::merge`]; [`evaluate::evaluate_model`] scores it on
//!    a labelled dataset; [`train::finetune::finetune`] retrains it briefly on
//!    a small new set; [`baseline::baseline`] fits tree and linear models on
//!    the same data for comparison; [`mod@bench`] measures throughput.
//!
//! Data flows one way through the layers: [`fits`] (file I/O) -> [`spectrum`]
//! -> [`preprocess`] (one file through both: [`ingest`]) -> [`dataset`] (HDF5, also from CSV tables via [`table`])
//! -> [`model`] (networks and backends) -> [`train`] and [`ensemble`] (with
//! the [`model_dir`] on disk) -> [`evaluate`] (with [`metrics`] and [`plot`]),
//! [`predict`] (catalogs, via [`catalog`]) and [`baseline`]. [`outputs`],
//! [`atomic`], [`lock`], [`progress`], [`csvio`] and [`pathtext`] are the
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
pub mod ingest;
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

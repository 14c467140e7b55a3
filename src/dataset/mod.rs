//! The model-ready dataset: preprocessed inputs, labels and provenance in one HDF5 file.
//!
//! Layout (any HDF5 reader, e.g. h5py, reads it):
//! - `inputs`  f32 `[N, bands, width]` (`[N, 64, 64]` by default)
//! - `labels`  f32 `[N, L]`
//! - `ids`     string `[N]`: OBSID, or the file name where a file has none
//! - `files`   string `[N]`: the source file path
//! - `snrg`, `ra`, `dec`, `z`  f64 `[N]` (NaN where the header lacks the keyword)
//! - attributes: `label_names` (string `[L]`), `preprocess_config` (JSON),
//!   `spectrain_version`, `created_by`.
//!
//! A catalog-feature dataset (`spectrain prepare-table`) has the same layout
//! with `inputs` `[N, 1, F]` holding the raw feature values (NaN where a value
//! is missing), the attribute `feature_names` (string `[F]`), NaN `snrg`/`ra`/
//! `dec`/`z`, and the row's id in both `ids` and `files`.

pub mod labels;
pub mod sampling;
pub mod targets;

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;

use crate::atomic::write_atomically;
use crate::preprocess::PreprocessConfig;

pub use labels::{JoinKey, LabelError, LabelLookup, LabelTable};
pub use targets::{select_targets, Targets, TargetsError};

/// The reject list written beside a dataset by `prepare` and `prepare-table`:
/// `DATA.h5` -> `DATA.rejects.csv`.
pub fn rejects_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    out.with_file_name(format!("{stem}.rejects.csv"))
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: HDF5 error: {source}")]
    Hdf5 { path: PathBuf, source: hdf5::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One star of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub id: String,
    pub file: String,
    pub input: Vec<f32>,
    pub labels: Vec<f32>,
    pub snrg: f64,
    pub ra: f64,
    pub dec: f64,
    pub z: f64,
}

/// A whole dataset in memory, columns side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub label_names: Vec<String>,
    pub preprocess: PreprocessConfig,
    /// Input column names of a catalog-feature dataset; `None` for spectra.
    pub features: Option<Vec<String>>,
    /// `[bands, width]` of one input (`[1, F]` for catalog features).
    pub input_shape: [usize; 2],
    /// Row-major `[N, bands * width]`.
    pub inputs: Vec<f32>,
    /// Row-major `[N, L]`.
    pub labels: Vec<f32>,
    pub ids: Vec<String>,
    pub files: Vec<String>,
    pub snrg: Vec<f64>,
    pub ra: Vec<f64>,
    pub dec: Vec<f64>,
    pub z: Vec<f64>,
}

impl Dataset {
    pub fn new(label_names: Vec<String>, preprocess: PreprocessConfig) -> Self {
        let input_shape = preprocess.input_shape();
        Self {
            label_names,
            preprocess,
            features: None,
            input_shape,
            inputs: Vec::new(),
            labels: Vec::new(),
            ids: Vec::new(),
            files: Vec::new(),
            snrg: Vec::new(),
            ra: Vec::new(),
            dec: Vec::new(),
            z: Vec::new(),
        }
    }

    /// An empty catalog-feature dataset with columns `features`.
    pub fn table(label_names: Vec<String>, features: Vec<String>) -> Self {
        Self {
            input_shape: [1, features.len()],
            features: Some(features),
            ..Self::new(label_names, PreprocessConfig::default())
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn input_len(&self) -> usize {
        self.input_shape[0] * self.input_shape[1]
    }

    pub fn push(&mut self, s: Sample) {
        debug_assert_eq!(s.input.len(), self.input_len());
        debug_assert_eq!(s.labels.len(), self.label_names.len());
        self.inputs.extend_from_slice(&s.input);
        self.labels.extend_from_slice(&s.labels);
        self.ids.push(s.id);
        self.files.push(s.file);
        self.snrg.push(s.snrg);
        self.ra.push(s.ra);
        self.dec.push(s.dec);
        self.z.push(s.z);
    }

    pub fn input(&self, i: usize) -> &[f32] {
        let n = self.input_len();
        &self.inputs[i * n..(i + 1) * n]
    }

    /// The rows `rows` of this dataset, in that order, as a dataset of their own.
    pub fn subset(&self, rows: &[usize]) -> Self {
        let (per, l) = (self.input_len(), self.label_names.len());
        let pick = |v: &[f64]| rows.iter().map(|&r| v[r]).collect();
        Self {
            label_names: self.label_names.clone(),
            preprocess: self.preprocess.clone(),
            features: self.features.clone(),
            input_shape: self.input_shape,
            inputs: rows
                .iter()
                .flat_map(|&r| self.inputs[r * per..(r + 1) * per].iter().copied())
                .collect(),
            labels: rows
                .iter()
                .flat_map(|&r| self.labels[r * l..(r + 1) * l].iter().copied())
                .collect(),
            ids: rows.iter().map(|&r| self.ids[r].clone()).collect(),
            files: rows.iter().map(|&r| self.files[r].clone()).collect(),
            snrg: pick(&self.snrg),
            ra: pick(&self.ra),
            dec: pick(&self.dec),
            z: pick(&self.z),
        }
    }

    pub fn label_row(&self, i: usize) -> &[f32] {
        let l = self.label_names.len();
        &self.labels[i * l..(i + 1) * l]
    }

    /// Writes the dataset to `path` atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), DatasetError> {
        write_atomically(path, |tmp| {
            self.write_to(tmp).map_err(|source| DatasetError::Hdf5 {
                path: path.to_path_buf(),
                source,
            })
        })
    }

    fn write_to(&self, path: &Path) -> hdf5::Result<()> {
        let n = self.len();
        let [bands, width] = self.input_shape;
        let l = self.label_names.len();
        let file = hdf5::File::create(path)?;
        file.new_dataset::<f32>()
            .shape([n, bands, width])
            .create("inputs")?
            .write_raw(&self.inputs)?;
        file.new_dataset::<f32>()
            .shape([n, l])
            .create("labels")?
            .write_raw(&self.labels)?;
        for (name, values) in [("ids", &self.ids), ("files", &self.files)] {
            file.new_dataset::<VarLenUnicode>()
                .shape([n])
                .create(name)?
                .write_raw(&to_varlen(values))?;
        }
        for (name, values) in [
            ("snrg", &self.snrg),
            ("ra", &self.ra),
            ("dec", &self.dec),
            ("z", &self.z),
        ] {
            file.new_dataset::<f64>()
                .shape([n])
                .create(name)?
                .write_raw(values)?;
        }
        file.new_attr::<VarLenUnicode>()
            .shape([l])
            .create("label_names")?
            .write_raw(&to_varlen(&self.label_names))?;
        let config = serde_json::to_string(&self.preprocess).expect("config serialises");
        write_string_attr(&file, "preprocess_config", &config)?;
        write_string_attr(&file, "spectrain_version", env!("CARGO_PKG_VERSION"))?;
        if let Some(features) = &self.features {
            file.new_attr::<VarLenUnicode>()
                .shape([features.len()])
                .create("feature_names")?
                .write_raw(&to_varlen(features))?;
        }
        let created_by = match self.features {
            Some(_) => "spectrain prepare-table",
            None => "spectrain prepare",
        };
        write_string_attr(&file, "created_by", created_by)?;
        file.close()
    }

    /// Reads a dataset written by [`Dataset::write`].
    pub fn read(path: &Path) -> Result<Self, DatasetError> {
        let h5 = |source| DatasetError::Hdf5 {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |reason: String| DatasetError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let file = hdf5::File::open(path).map_err(h5)?;
        let names = file.attr_names().map_err(h5)?;
        if !names.iter().any(|n| n == "preprocess_config") {
            return Err(invalid(
                "not a spectrain dataset (it has no preprocess_config attribute): make one with \
                 `spectrain prepare` or `spectrain prepare-table`"
                    .into(),
            ));
        }
        let config_json = read_string_attr(&file, "preprocess_config").map_err(h5)?;
        let preprocess: PreprocessConfig = serde_json::from_str(&config_json)
            .map_err(|e| invalid(format!("preprocess_config attribute: {e}")))?;
        let label_names: Vec<String> = file
            .attr("label_names")
            .and_then(|a| a.read_raw::<VarLenUnicode>())
            .map_err(h5)?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let features = match file.attr("feature_names") {
            Ok(a) => Some(
                a.read_raw::<VarLenUnicode>()
                    .map_err(h5)?
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect::<Vec<_>>(),
            ),
            Err(_) => None,
        };
        let inputs_ds = file.dataset("inputs").map_err(h5)?;
        let shape = inputs_ds.shape();
        if shape.len() != 3 {
            return Err(invalid(format!(
                "inputs has shape {shape:?}, expected [N, bands, width]"
            )));
        }
        let strings = |name: &str| -> Result<Vec<String>, DatasetError> {
            Ok(file
                .dataset(name)
                .and_then(|d| d.read_raw::<VarLenUnicode>())
                .map_err(h5)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect())
        };
        let floats = |name: &str| -> Result<Vec<f64>, DatasetError> {
            file.dataset(name)
                .and_then(|d| d.read_raw::<f64>())
                .map_err(h5)
        };
        let ds = Dataset {
            input_shape: [shape[1], shape[2]],
            inputs: inputs_ds.read_raw::<f32>().map_err(h5)?,
            labels: file
                .dataset("labels")
                .and_then(|d| d.read_raw::<f32>())
                .map_err(h5)?,
            ids: strings("ids")?,
            files: strings("files")?,
            snrg: floats("snrg")?,
            ra: floats("ra")?,
            dec: floats("dec")?,
            z: floats("z")?,
            label_names,
            preprocess,
            features,
        };
        let n = shape[0];
        if let Some(f) = &ds.features {
            if f.len() != shape[1] * shape[2] {
                return Err(invalid(format!(
                    "{} feature names for inputs of shape {shape:?}",
                    f.len()
                )));
            }
        }
        if ds.ids.len() != n || ds.labels.len() != n * ds.label_names.len() || ds.snrg.len() != n {
            return Err(invalid("datasets have inconsistent lengths".into()));
        }
        Ok(ds)
    }
}

fn to_varlen(values: &[String]) -> Vec<VarLenUnicode> {
    values
        .iter()
        .map(|s| {
            // Interior NULs cannot be stored in HDF5 strings.
            s.replace('\0', "")
                .parse::<VarLenUnicode>()
                .expect("NUL-free string")
        })
        .collect()
}

fn write_string_attr(file: &hdf5::File, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value.replace('\0', "").parse().expect("NUL-free string");
    file.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .write_scalar(&v)
}

fn read_string_attr(file: &hdf5::File, name: &str) -> hdf5::Result<String> {
    Ok(file
        .attr(name)?
        .read_scalar::<VarLenUnicode>()?
        .as_str()
        .to_string())
}

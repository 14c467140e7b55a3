//! The label catalog: a CSV with one row per star, joined to spectra by OBSID or file name.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csvio::{cell_text, parse_cell, Cell};
use crate::spectrum::SpectrumMeta;

/// Which identifier joins a spectrum to its label row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum JoinKey {
    /// The `OBSID` header keyword against the `obsid` column; files without an
    /// OBSID (DR1) fall back to the file name against the `file` column.
    Obsid,
    /// The file name against the `file` column.
    File,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{path}: cannot read label catalog: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: label catalog has no column '{column}' (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: the label catalog has no 'obsid' column (columns: {available}); {hint}")]
    NoObsid {
        path: PathBuf,
        available: String,
        hint: &'static str,
    },
}

/// A label cell, by the one CSV rule of [`crate::csvio`].
#[derive(Debug, Clone, PartialEq)]
enum LabelValue {
    Value(f64),
    Missing,
    /// Text that is not a number finite in f32.
    Bad(String),
}

/// Label rows indexed by join key.
#[derive(Debug, Clone)]
pub struct LabelTable {
    pub names: Vec<String>,
    key: JoinKey,
    by_obsid: HashMap<i64, usize>,
    by_file: HashMap<String, usize>,
    rows: Vec<Vec<LabelValue>>,
    /// Keys seen more than once; the first row wins.
    pub duplicate_keys: usize,
}

/// A label row lookup that failed, with the reason for the reject list.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelLookup<'a> {
    Found(Vec<f32>),
    NoRow(String),
    Missing(&'a str),
    /// The named column's text is not a number.
    Bad(&'a str, &'a str),
}

/// File names match with or without a trailing `.gz`.
fn file_key(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    base.strip_suffix(".gz").unwrap_or(&base).to_string()
}

impl LabelTable {
    /// Reads `path`, keeping `columns` (in that order). A requested column that
    /// the CSV lacks is an error naming it.
    pub fn read(path: &Path, key: JoinKey, columns: &[String]) -> Result<Self, LabelError> {
        let csv_err = |source| LabelError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let mut reader = crate::csvio::reader(path).map_err(csv_err)?;
        let headers = crate::csvio::Header::read(&mut reader).map_err(csv_err)?;
        let find = |name: &str| headers.find(name);
        let missing = |column: &str| LabelError::MissingColumn {
            path: path.to_path_buf(),
            column: column.to_string(),
            available: headers.list(),
        };
        let label_idx = columns
            .iter()
            .map(|c| find(c).ok_or_else(|| missing(c)))
            .collect::<Result<Vec<_>, _>>()?;
        let obsid_idx = find("obsid");
        let file_idx = find("file");
        match key {
            JoinKey::Obsid if obsid_idx.is_none() => {
                return Err(LabelError::NoObsid {
                    path: path.to_path_buf(),
                    available: headers.list(),
                    hint: if file_idx.is_some() {
                        "it has a 'file' column: join on file names with --id file"
                    } else {
                        "add an 'obsid' column, or a 'file' column and use --id file"
                    },
                })
            }
            JoinKey::File if file_idx.is_none() => return Err(missing("file")),
            _ => {}
        }
        let mut table = LabelTable {
            names: columns.to_vec(),
            key,
            by_obsid: HashMap::new(),
            by_file: HashMap::new(),
            rows: Vec::new(),
            duplicate_keys: 0,
        };
        for record in reader.byte_records() {
            let record = record.map_err(csv_err)?;
            let values = label_idx
                .iter()
                .map(|&idx| match parse_cell(record.get(idx).unwrap_or(b"")) {
                    Cell::Value(v) => LabelValue::Value(v),
                    Cell::Missing => LabelValue::Missing,
                    Cell::Bad => LabelValue::Bad(cell_text(&record, idx)),
                })
                .collect();
            let row = table.rows.len();
            table.rows.push(values);
            // The first row wins for a repeated key.
            let mut duplicate = false;
            if let Some(obsid) = obsid_idx
                .map(|i| cell_text(&record, i))
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.fract() == 0.0)
            {
                let slot = table.by_obsid.entry(obsid as i64);
                duplicate |= key == JoinKey::Obsid && matches!(slot, Entry::Occupied(_));
                slot.or_insert(row);
            }
            if let Some(file) = file_idx
                .map(|i| cell_text(&record, i))
                .filter(|s| !s.is_empty())
            {
                let slot = table.by_file.entry(file_key(&file));
                duplicate |= key == JoinKey::File && matches!(slot, Entry::Occupied(_));
                slot.or_insert(row);
            }
            table.duplicate_keys += usize::from(duplicate);
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The id a spectrum is known by in outputs: OBSID, or the file name without one.
    pub fn spectrum_id(meta: &SpectrumMeta) -> String {
        meta.obsid
            .map(|o| o.to_string())
            .unwrap_or_else(|| meta.file_name.clone())
    }

    /// The row index for a spectrum under the table's join key.
    fn row_of(&self, meta: &SpectrumMeta) -> Result<usize, String> {
        let by_file = || {
            self.by_file
                .get(&file_key(&meta.file_name))
                .copied()
                .ok_or_else(|| format!("no label row for file name {}", meta.file_name))
        };
        match (self.key, meta.obsid) {
            (JoinKey::Obsid, Some(obsid)) => self
                .by_obsid
                .get(&obsid)
                .copied()
                .ok_or_else(|| format!("no label row for OBSID {obsid}")),
            (JoinKey::Obsid, None) => by_file().map_err(|e| format!("{e} (file has no OBSID)")),
            (JoinKey::File, _) => by_file(),
        }
    }

    /// The requested labels of a spectrum, or why there are none.
    pub fn lookup(&self, meta: &SpectrumMeta) -> LabelLookup<'_> {
        let row = match self.row_of(meta) {
            Ok(r) => r,
            Err(why) => return LabelLookup::NoRow(why),
        };
        let mut out = Vec::with_capacity(self.names.len());
        for (v, name) in self.rows[row].iter().zip(&self.names) {
            match v {
                LabelValue::Value(v) => out.push(*v as f32),
                LabelValue::Missing => return LabelLookup::Missing(name),
                LabelValue::Bad(text) => return LabelLookup::Bad(name, text),
            }
        }
        LabelLookup::Found(out)
    }
}

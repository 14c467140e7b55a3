//! The domain gate of a fine-tuned model: where the new set has data, the
//! fine-tuned members answer; far from it, the parent's members answer
//! unchanged; in between, a linear blend.
//!
//! The new set's domain is described in the model's own input space (catalog
//! features standardised with the parent's scaler, or preprocessed spectra):
//! an input's distance `d` to its `neighbours`-th nearest row of the new set's
//! training part, against that set's own spacing. The child's weight is 1 for
//! `d <= inner`, 0 for `d >= outer`, linear in between. Fine-tuning on a few
//! stars therefore cannot move a prediction for a star unlike all of them:
//! there the catalog is the parent's, bit for bit.
//!
//! On disk (`finetune` writes them): `gate.json` ([`GateFile`]), the rows as
//! little-endian f32 in `gate-rows.f32` (SHA-256 checked at load), and the
//! parent model itself in `parent/`.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// `gate.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateFile {
    /// The k of the k-th-nearest-neighbour distance.
    pub neighbours: usize,
    /// Child weight 1 up to this distance (standardised input units).
    pub inner: f64,
    /// Child weight 0 from this distance on.
    pub outer: f64,
    /// Rows of the new set's domain and values per row.
    pub rows: usize,
    pub inputs: usize,
    /// SHA-256 of `gate-rows.f32`.
    pub rows_sha256: String,
    /// SHA-256 of the parent's `spec.json` and of each member's weights, as copied into `parent/`.
    pub parent_spec_sha256: String,
    pub parent_weights_sha256: Vec<String>,
}

/// A loaded gate: the new set's rows and the blend distances.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub neighbours: usize,
    pub inner: f64,
    pub outer: f64,
    /// Row-major `[n, per]` model-ready inputs of the new set's training part.
    pub rows: Vec<f32>,
    pub per: usize,
}

/// Squared Euclidean distance of two rows.
pub(crate) fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum()
}

impl Gate {
    /// Distance from `x` to its `neighbours`-th nearest gate row.
    pub fn distance(&self, x: &[f32]) -> f64 {
        let mut d: Vec<f64> = self
            .rows
            .chunks_exact(self.per.max(1))
            .map(|r| dist2(x, r))
            .collect();
        if d.is_empty() {
            return f64::INFINITY;
        }
        let k = self.neighbours.clamp(1, d.len()) - 1;
        let (_, kth, _) = d.select_nth_unstable_by(k, f64::total_cmp);
        kth.sqrt()
    }

    /// The child's weight at distance `d`: 1 inside `inner`, 0 beyond `outer`.
    pub fn weight_at(&self, d: f64) -> f64 {
        if d <= self.inner {
            1.0
        } else if d >= self.outer || !d.is_finite() {
            0.0
        } else {
            (self.outer - d) / (self.outer - self.inner)
        }
    }

    /// The child's weight for each row of row-major model-ready `inputs`.
    pub fn weights(&self, inputs: &[f32]) -> Vec<f64> {
        inputs
            .par_chunks_exact(self.per.max(1))
            .map(|x| self.weight_at(self.distance(x)))
            .collect()
    }

    /// Writes `gate.json` and `gate-rows.f32` into `dir` (atomically), the
    /// parent's identity taken from its copy in `parent`.
    pub fn save(&self, dir: &Path, parent: &Path, members: usize) -> std::io::Result<()> {
        let files = crate::model_dir::ModelDir::new(dir);
        let bytes: Vec<u8> = self.rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        crate::atomic::write_atomically(&files.gate_rows(), |tmp| std::fs::write(tmp, &bytes))?;
        let pfiles = crate::model_dir::ModelDir::new(parent);
        let file = GateFile {
            neighbours: self.neighbours,
            inner: self.inner,
            outer: self.outer,
            rows: self.rows.len() / self.per.max(1),
            inputs: self.per,
            rows_sha256: crate::model_dir::sha256_file(&files.gate_rows())?,
            parent_spec_sha256: crate::model_dir::sha256_file(&pfiles.spec())?,
            parent_weights_sha256: (0..members)
                .map(|m| crate::model_dir::sha256_file(&pfiles.member_weights(m)))
                .collect::<std::io::Result<_>>()?,
        };
        let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        crate::atomic::write_atomically(&files.gate(), |tmp| std::fs::write(tmp, text + "\n"))
    }

    /// Reads the gate of model directory `dir`, checking its rows' checksum
    /// and that `parent/` is the parent it was fitted with. `Ok(None)` when
    /// the model has no gate.
    pub fn load(dir: &Path) -> Result<Option<Self>, (PathBuf, String)> {
        let files = crate::model_dir::ModelDir::new(dir);
        let path = files.gate();
        if !path.exists() {
            return Ok(None);
        }
        let bad = |p: &Path, reason: String| (p.to_path_buf(), reason);
        let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e.to_string()))?;
        let file: GateFile = serde_json::from_str(&text)
            .map_err(|e| bad(&path, format!("not a spectrain gate: {e}")))?;
        let rows_path = files.gate_rows();
        let sha = crate::model_dir::sha256_file(&rows_path)
            .map_err(|e| bad(&rows_path, e.to_string()))?;
        if sha != file.rows_sha256 {
            return Err(bad(
                &rows_path,
                format!(
                    "SHA-256 {sha} does not match {} in gate.json",
                    file.rows_sha256
                ),
            ));
        }
        let pfiles = crate::model_dir::ModelDir::new(&files.parent());
        let spec_sha = crate::model_dir::sha256_file(&pfiles.spec())
            .map_err(|e| bad(&pfiles.spec(), e.to_string()))?;
        if spec_sha != file.parent_spec_sha256 {
            return Err(bad(
                &pfiles.spec(),
                "is not the parent this gate was fitted with (SHA-256 differs from gate.json)"
                    .into(),
            ));
        }
        for (m, want) in file.parent_weights_sha256.iter().enumerate() {
            let p = pfiles.member_weights(m);
            let got = crate::model_dir::sha256_file(&p).map_err(|e| bad(&p, e.to_string()))?;
            if got != *want {
                return Err(bad(&p, "is not the parent member gate.json records".into()));
            }
        }
        let bytes = std::fs::read(&rows_path).map_err(|e| bad(&rows_path, e.to_string()))?;
        if bytes.len() != 4 * file.rows * file.inputs {
            return Err(bad(
                &rows_path,
                format!(
                    "{} bytes, but gate.json says {} rows of {} values",
                    bytes.len(),
                    file.rows,
                    file.inputs
                ),
            ));
        }
        let ok = file.inner.is_finite() && file.outer > file.inner && file.inner >= 0.0;
        if !ok || file.neighbours == 0 {
            return Err(bad(
                &path,
                format!(
                    "invalid distances (inner {}, outer {}, neighbours {})",
                    file.inner, file.outer, file.neighbours
                ),
            ));
        }
        Ok(Some(Self {
            neighbours: file.neighbours,
            inner: file.inner,
            outer: file.outer,
            rows: bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            per: file.inputs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        // Five rows on a line at x = 0..4 in 2-D, k = 2.
        Gate {
            neighbours: 2,
            inner: 1.0,
            outer: 3.0,
            rows: (0..5).flat_map(|i| [i as f32, 0.0]).collect(),
            per: 2,
        }
    }

    #[test]
    fn distance_is_to_the_kth_nearest_row() {
        let g = gate();
        // (2, 0): nearest 2 (d 0), then 1 and 3 (d 1).
        assert_eq!(g.distance(&[2.0, 0.0]), 1.0);
        // (-3, 4): rows at distance 5, sqrt(32), ...; the 2nd is sqrt(16 + 16).
        assert!((g.distance(&[-3.0, 4.0]) - 32f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn weight_is_one_inside_zero_outside_and_linear_between() {
        let g = gate();
        assert_eq!(g.weight_at(0.5), 1.0);
        assert_eq!(g.weight_at(1.0), 1.0);
        assert_eq!(g.weight_at(2.0), 0.5);
        assert_eq!(g.weight_at(3.0), 0.0);
        assert_eq!(g.weight_at(f64::INFINITY), 0.0);
        let w = g.weights(&[2.0, 0.0, 2.0, 2.0, 2.0, 10.0]);
        // Distances 1, sqrt(5), sqrt(101).
        assert_eq!(w[0], 1.0);
        assert!((w[1] - (3.0 - 5f64.sqrt()) / 2.0).abs() < 1e-12);
        assert_eq!(w[2], 0.0);
    }
}

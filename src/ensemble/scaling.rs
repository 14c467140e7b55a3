//! Standardisation fitted on a training split: of the labels (regression
//! targets) and of catalog features (MLP inputs). Spectra are not
//! standardised: preprocessing normalises them.
//!
//! The two fits compute the same population mean and std (a constant column
//! gets std 1) but not with the same floating-point steps: the label fit
//! divides each term by n as it sums, the feature fit sums and then divides.
//! They round differently, so one shared fit would change either every
//! model's label standardisation or every MLP's feature scaling in the last
//! bits, and with them the trained weights; they stay two, side by side.
//! Only the feature fit needs a rule for missing values: `prepare` and
//! `prepare-table` reject rows with a missing label.

use serde::{Deserialize, Serialize};

/// Per-label mean and standard deviation of the training split (never the validation split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardiser {
    /// Fits on `rows` of a row-major `[N, L]` label matrix. A constant label gets std 1.
    pub fn fit(labels: &[f32], n_labels: usize, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; n_labels];
        let mut std = vec![0.0; n_labels];
        for &r in rows {
            for (l, m) in mean.iter_mut().enumerate() {
                *m += labels[r * n_labels + l] as f64 / n;
            }
        }
        for &r in rows {
            for (l, s) in std.iter_mut().enumerate() {
                let d = labels[r * n_labels + l] as f64 - mean[l];
                *s += d * d / n;
            }
        }
        let std = std
            .into_iter()
            .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
            .collect();
        Self { mean, std }
    }

    pub fn forward(&self, label: usize, value: f64) -> f64 {
        (value - self.mean[label]) / self.std[label]
    }

    pub fn inverse(&self, label: usize, value: f64) -> f64 {
        value * self.std[label] + self.mean[label]
    }
}

/// Standardisation of catalog features, fitted on the training split, with
/// the rule for missing values: a missing (empty or NaN) feature is replaced by
/// its training mean, i.e. 0 after standardisation, and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaler {
    pub names: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Per feature `[min, max]` over the training split, for applicability flags.
    pub ranges: Vec<[f64; 2]>,
}

impl FeatureScaler {
    /// Fits on `rows` of row-major raw features `[N, names.len()]`, ignoring missing values.
    pub fn fit(names: &[String], inputs: &[f32], rows: &[usize]) -> Self {
        let f = names.len();
        let column = |k: usize| -> Vec<f64> {
            rows.iter()
                .map(|&r| inputs[r * f + k] as f64)
                .filter(|v| v.is_finite())
                .collect()
        };
        let (mut mean, mut std, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..f {
            let v = column(k);
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
            mean.push(m);
            std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
            ranges.push(
                v.iter()
                    .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &x| {
                        [lo.min(x), hi.max(x)]
                    }),
            );
        }
        Self {
            names: names.to_vec(),
            mean,
            std,
            ranges,
        }
    }

    /// Standardises row-major raw features in place; missing values become 0
    /// (the training mean). Returns, per row, the indices of imputed features.
    pub fn transform(&self, inputs: &mut [f32]) -> Vec<Vec<usize>> {
        let f = self.names.len();
        inputs
            .chunks_mut(f.max(1))
            .map(|row| {
                let mut missing = Vec::new();
                for (k, v) in row.iter_mut().enumerate() {
                    if v.is_finite() {
                        *v = ((*v as f64 - self.mean[k]) / self.std[k]) as f32;
                    } else {
                        *v = 0.0;
                        missing.push(k);
                    }
                }
                missing
            })
            .collect()
    }

    /// Names of the features of a raw row outside their training range.
    pub fn outside(&self, raw: &[f32]) -> Vec<&str> {
        raw.iter()
            .zip(&self.ranges)
            .zip(&self.names)
            .filter(|((v, [lo, hi]), _)| {
                v.is_finite() && ((**v as f64) < *lo || (**v as f64) > *hi)
            })
            .map(|(_, n)| n.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_scaler_uses_training_rows_only_and_imputes_the_training_mean() {
        let names = vec!["a".to_string(), "b".to_string()];
        // Row 2 is validation: its huge values must not move the statistics.
        let inputs = [1.0, 10.0, 3.0, f32::NAN, 1e6, 1e6, 5.0, 30.0];
        let s = FeatureScaler::fit(&names, &inputs, &[0, 1, 3]);
        assert_eq!(s.mean, vec![3.0, 20.0]);
        // Population std of (1, 3, 5) and of (10, 30): the NaN is ignored.
        assert!((s.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.std[1], 10.0);
        assert_eq!(s.ranges, vec![[1.0, 5.0], [10.0, 30.0]]);
        let mut x = [3.0, f32::NAN, 5.0, 40.0];
        let missing = s.transform(&mut x);
        assert_eq!(missing, vec![vec![1], vec![]]);
        assert_eq!(x[0], 0.0);
        assert_eq!(x[1], 0.0, "imputed with the training mean");
        assert_eq!(x[3], 2.0);
        assert_eq!(s.outside(&[5.0, 40.0]), vec!["b"]);
    }
}

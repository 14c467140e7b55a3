//! Uncertainties that mean what they say.
//!
//! The spread of bootstrap members measures only how much the networks
//! disagree; most of a prediction's error is what they all get wrong together
//! (label noise, too little data near the star). On unseen LAMOST stars the raw
//! spread covers well under half of the errors at 1 sigma. A regression
//! ensemble therefore reports, per label `j`,
//!
//! ```text
//! sigma = sqrt((a_j * spread)^2 + b_j^2)
//! ```
//!
//! with `a_j` (how far the spread is to be trusted) and `b_j` (an error floor
//! in label units) fitted on the validation split, which no member trained
//! on, so that 68.3% of its errors fall within 1 sigma and 95.4% within 2
//! sigma. The fit lives in `calibration.json` beside `spec.json`; the raw
//! spread stays in the catalog as `<label>_spread`.

use serde::{Deserialize, Serialize};

use super::Predictions;

/// Fraction of a Gaussian within 1 and 2 sigma.
pub const GAUSS_1SIGMA: f64 = 0.682_689_492;
pub const GAUSS_2SIGMA: f64 = 0.954_499_736;

/// One label's fitted uncertainty model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCalibration {
    pub label: String,
    /// Multiplier of the member spread.
    pub scale: f64,
    /// Error floor, in label units.
    pub floor: f64,
    /// Coverage of the raw spread on the fitting rows: within 1 and 2 spreads.
    pub raw_coverage: [f64; 2],
    /// Coverage of the calibrated sigma on the fitting rows: within 1 and 2 sigma.
    pub coverage: [f64; 2],
}

/// Every label's uncertainty model, `calibration.json` in a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What it was fitted on, e.g. "validation split (178 rows)".
    pub fitted_on: String,
    pub rows: usize,
    pub labels: Vec<LabelCalibration>,
}

impl Calibration {
    /// Fits every label on `rows` predictions with row-major truth `[n, L]`
    /// (`preds` row `i` is truth row `i`); non-finite truths are skipped.
    pub fn fit(names: &[String], preds: &Predictions, truth: &[f32], fitted_on: &str) -> Self {
        let l = names.len();
        let n = preds.len();
        let labels = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let (err, spread): (Vec<f64>, Vec<f64>) = (0..n)
                    .filter(|&i| truth[i * l + j].is_finite())
                    .map(|i| {
                        (
                            (preds.mean(i, j) - truth[i * l + j] as f64).abs(),
                            preds.std(i, j),
                        )
                    })
                    .unzip();
                let (scale, floor) = fit_label(&err, &spread);
                LabelCalibration {
                    label: name.clone(),
                    scale,
                    floor,
                    raw_coverage: coverage(&err, &spread),
                    coverage: coverage(
                        &err,
                        &spread
                            .iter()
                            .map(|&s| sigma(scale, floor, s))
                            .collect::<Vec<_>>(),
                    ),
                }
            })
            .collect();
        Self {
            fitted_on: fitted_on.to_string(),
            rows: n,
            labels,
        }
    }

    /// The calibrated 1-sigma uncertainty of label `j` given the member spread.
    pub fn sigma(&self, j: usize, spread: f64) -> f64 {
        let c = &self.labels[j];
        sigma(c.scale, c.floor, spread)
    }

    /// Checks the fit against the spec's labels.
    pub fn check(&self, label_names: &[String]) -> Result<(), String> {
        let names: Vec<&String> = self.labels.iter().map(|c| &c.label).collect();
        if names.len() != label_names.len() || names.iter().zip(label_names).any(|(a, b)| *a != b) {
            return Err(format!(
                "calibrated labels {names:?} are not the model's {label_names:?}"
            ));
        }
        if let Some(c) = self
            .labels
            .iter()
            .find(|c| !(c.scale >= 0.0 && c.floor >= 0.0 && c.scale + c.floor > 0.0))
        {
            return Err(format!(
                "label {}: scale {} and floor {} must be non-negative, not both zero",
                c.label, c.scale, c.floor
            ));
        }
        Ok(())
    }
}

fn sigma(scale: f64, floor: f64, spread: f64) -> f64 {
    ((scale * spread).powi(2) + floor * floor).sqrt()
}

/// Fractions of `err` within 1 and 2 `sigma` (a zero sigma covers only a zero error).
pub fn coverage(err: &[f64], sigma: &[f64]) -> [f64; 2] {
    [
        crate::metrics::fraction_within(err, sigma, 1.0),
        crate::metrics::fraction_within(err, sigma, 2.0),
    ]
}

/// `(scale, floor)` on a grid: the pair whose 1- and 2-sigma coverage is
/// nearest the Gaussian's (the 2-sigma miss weighted twice, its tolerance
/// being half as wide), ties (coverage moves in steps of 1/n) broken by the
/// Gaussian negative log-likelihood. Without usable rows: the raw spread.
fn fit_label(err: &[f64], spread: &[f64]) -> (f64, f64) {
    if err.len() < 5 {
        return (1.0, 0.0);
    }
    let mut sorted = err.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let typical = if median > 0.0 {
        median
    } else {
        sorted.iter().copied().find(|e| *e > 0.0).unwrap_or(1.0)
    };
    let geometric = |lo: f64, hi: f64, k: usize| -> Vec<f64> {
        (0..k)
            .map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64))
            .collect()
    };
    let scales: Vec<f64> = std::iter::once(0.0)
        .chain(geometric(0.1, 50.0, 64))
        .collect();
    let floors: Vec<f64> = std::iter::once(0.0)
        .chain(geometric(0.01 * typical, 5.0 * typical, 64))
        .collect();
    let mut best: Option<((f64, f64), (f64, f64))> = None;
    for &a in &scales {
        for &b in &floors {
            let s: Vec<f64> = spread.iter().map(|&x| sigma(a, b, x)).collect();
            if s.iter().any(|v| !(*v > 0.0)) {
                continue;
            }
            let [c1, c2] = coverage(err, &s);
            // Each miss in units of what is tolerable: catalogs are judged
            // on 1-sigma coverage within +-0.08 and 2-sigma within +-0.04.
            let miss = ((c1 - GAUSS_1SIGMA) / 0.08).powi(2) + ((c2 - GAUSS_2SIGMA) / 0.04).powi(2);
            let nll = err
                .iter()
                .zip(&s)
                .map(|(e, v)| v.ln() + 0.5 * (e / v).powi(2))
                .sum::<f64>()
                / err.len() as f64;
            let key = (miss, nll);
            if best
                .is_none_or(|(k, _)| key.0 < k.0 - 1e-12 || (key.0 <= k.0 + 1e-12 && key.1 < k.1))
            {
                best = Some((key, (a, b)));
            }
        }
    }
    best.map_or((1.0, 0.0), |(_, ab)| ab)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::sampling::SplitMix64;

    /// Gaussian deviates by Box-Muller from a fixed seed.
    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (0..n)
            .map(|_| {
                let (u1, u2) = (u().max(1e-300), u());
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    #[test]
    fn errors_three_times_the_spread_plus_a_floor_are_recovered() {
        // Errors drawn with sigma = sqrt((3 s)^2 + 0.5^2), s varying 0.05..0.5.
        let n = 4000;
        let z = normals(n, 7);
        let spread: Vec<f64> = (0..n)
            .map(|i| 0.05 + 0.45 * (i % 97) as f64 / 96.0)
            .collect();
        let err: Vec<f64> = z
            .iter()
            .zip(&spread)
            .map(|(z, s)| (z * sigma(3.0, 0.5, *s)).abs())
            .collect();
        let (a, b) = fit_label(&err, &spread);
        let [c1, c2] = coverage(
            &err,
            &spread.iter().map(|s| sigma(a, b, *s)).collect::<Vec<_>>(),
        );
        assert!((c1 - GAUSS_1SIGMA).abs() < 0.01, "1-sigma coverage {c1}");
        assert!((c2 - GAUSS_2SIGMA).abs() < 0.01, "2-sigma coverage {c2}");
        // The raw spread covers far less than 68%.
        let [r1, _] = coverage(&err, &spread);
        assert!(r1 < 0.35, "raw coverage {r1}");
        assert!(
            (a - 3.0).abs() < 0.9 && (b - 0.5).abs() < 0.2,
            "a {a} b {b}"
        );
    }

    #[test]
    fn the_fit_is_used_through_predictions() {
        // Two members whose disagreement is 0.1; truth off the mean by 0.5 for
        // every row: a floor near 0.5/1 sigma ... the fit must cover ~68%.
        let n = 200;
        let z = normals(n, 11);
        let mean: Vec<f32> = vec![10.0; n];
        let m0: Vec<f32> = mean.iter().map(|m| m - 0.1).collect();
        let m1: Vec<f32> = mean.iter().map(|m| m + 0.1).collect();
        let truth: Vec<f32> = z.iter().map(|z| 10.0 + 0.5 * *z as f32).collect();
        let preds = Predictions {
            outputs: 1,
            members: vec![m0, m1],
            sigma: None,
        };
        let cal = Calibration::fit(&["x".to_string()], &preds, &truth, "test");
        cal.check(&["x".to_string()]).unwrap();
        let c = &cal.labels[0];
        assert!((c.coverage[0] - GAUSS_1SIGMA).abs() < 0.03, "{c:?}");
        assert!((c.coverage[1] - GAUSS_2SIGMA).abs() < 0.03, "{c:?}");
        assert!(c.raw_coverage[0] < 0.25, "{c:?}");
        let s = cal.sigma(0, 0.1);
        assert!((s - 0.5).abs() < 0.1, "sigma {s}");
        assert!(cal.check(&["y".to_string()]).is_err());
    }
}

//! Accuracy metrics of METHOD section 6, for members and ensembles.
//!
//! The metric structs are the one definition of what `metrics.json`,
//! `member-NN.json`, `report.json` and `finetune.json` hold per label. Their
//! fields are declared in alphabetical order because these files were written
//! through `serde_json::Value` (whose maps sort their keys) before the metrics
//! were typed: the files keep their bytes, and old ones still load. JSON has no
//! NaN: a non-finite metric is written `null` and read back as NaN.
//!
//! Adding a metric: a field in its alphabetical place, computed in `compute`,
//! reaches all four files; mark it `#[serde(default = ...)]` so that member
//! reports written before it still load. To print it, add a column to
//! `EvaluationReport::markdown` (src/evaluate.rs) or the `train` summary
//! (src/cli/train.rs); a misspelt field there does not compile.

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` (how serde_json writes NaN and infinities) as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A metric as a report prints it: four decimals, "-" when it is missing or
/// not finite (as `null` in the JSON files).
pub fn cell(x: impl Into<Option<f64>>) -> String {
    match x.into() {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "-".to_string(),
    }
}

/// One label's metrics, serialised as the bare metric object (untagged: the
/// fields tell the two apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelMetrics {
    Regression(RegressionMetrics),
    Classification(ClassificationMetrics),
}

impl LabelMetrics {
    /// Rows scored.
    pub fn n(&self) -> usize {
        match self {
            Self::Regression(m) => m.n,
            Self::Classification(m) => m.n,
        }
    }

    pub fn regression(&self) -> Option<&RegressionMetrics> {
        match self {
            Self::Regression(m) => Some(m),
            Self::Classification(_) => None,
        }
    }

    pub fn classification(&self) -> Option<&ClassificationMetrics> {
        match self {
            Self::Regression(_) => None,
            Self::Classification(m) => Some(m),
        }
    }
}

/// Regression metrics of predictions `p` against truths `y` for one label.
/// Fields in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// mean (p - y).
    #[serde(deserialize_with = "nan_if_null")]
    pub bias: f64,
    /// median |r - median r| of the residuals r = p - y (unscaled).
    #[serde(deserialize_with = "nan_if_null")]
    pub mad: f64,
    /// M1: mean |p - y|.
    #[serde(deserialize_with = "nan_if_null")]
    pub mae: f64,
    /// M2: mean |p - y| / y in percent; only when every y > 0.
    pub mape: Option<f64>,
    /// median |p - y| / |y|.
    #[serde(deserialize_with = "nan_if_null")]
    pub median_relative_error: f64,
    pub n: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub pearson_r: f64,
    /// std (p - y), divisor n.
    #[serde(deserialize_with = "nan_if_null")]
    pub sigma: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

impl RegressionMetrics {
    pub fn compute(p: &[f64], y: &[f64]) -> Self {
        let n = p.len();
        let nf = n.max(1) as f64;
        let r: Vec<f64> = p.iter().zip(y).map(|(a, b)| a - b).collect();
        let mae = r.iter().map(|e| e.abs()).sum::<f64>() / nf;
        let bias = r.iter().sum::<f64>() / nf;
        let sigma = (r.iter().map(|e| (e - bias).powi(2)).sum::<f64>() / nf).sqrt();
        let mape = y
            .iter()
            .all(|v| *v > 0.0)
            .then(|| 100.0 * r.iter().zip(y).map(|(e, v)| e.abs() / v).sum::<f64>() / nf);
        let med = median(r.clone());
        let mad = median(r.iter().map(|e| (e - med).abs()).collect());
        let median_relative_error =
            median(r.iter().zip(y).map(|(e, v)| e.abs() / v.abs()).collect());
        Self {
            n,
            mae,
            mape,
            bias,
            sigma,
            mad,
            median_relative_error,
            pearson_r: pearson(p, y),
        }
    }
}

pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// SNR(g) bins of METHOD section 6: <20, 20-30, 30-50, >50.
pub const SNR_BINS: [(f64, f64, &str); 4] = [
    (f64::NEG_INFINITY, 20.0, "<20"),
    (20.0, 30.0, "20-30"),
    (30.0, 50.0, "30-50"),
    (50.0, f64::INFINITY, ">50"),
];

/// Classification metrics for RGB (class 0) vs RC (class 1).
/// Fields in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// Fraction of true class 0 (RGB) predicted class 0.
    #[serde(deserialize_with = "nan_if_null")]
    pub completeness: f64,
    /// Fraction of predicted class 0 (RGB) that are truly class 1 (RC).
    #[serde(deserialize_with = "nan_if_null")]
    pub contamination: f64,
    pub n: usize,
}

impl ClassificationMetrics {
    pub fn compute(predicted: &[usize], truth: &[usize]) -> Self {
        let n = predicted.len();
        let correct = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
        let pred0 = predicted.iter().filter(|p| **p == 0).count();
        let pred0_true1 = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == 0 && **t == 1)
            .count();
        let true0 = truth.iter().filter(|t| **t == 0).count();
        let true0_pred0 = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == 0 && **t == 0)
            .count();
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                f64::NAN
            } else {
                a as f64 / b as f64
            }
        };
        Self {
            n,
            accuracy: ratio(correct, n),
            contamination: ratio(pred0_true1, pred0),
            completeness: ratio(true0_pred0, true0),
        }
    }
}

/// StelNet's tension between a prediction N(mu_p, s_p) and a reference N(mu_t, s_t):
/// log10 tau, where tau = E(mu_p = mu_t) / E; below 1 is consistent.
pub fn log10_tension(mu_p: f64, s_p: f64, mu_t: f64, s_t: f64) -> f64 {
    let s2 = s_p * s_p + s_t * s_t;
    // tau = exp((mu_p - mu_t)^2 / (2 S^2)), so log10 tau is closed-form.
    (mu_p - mu_t).powi(2) / (2.0 * s2) / std::f64::consts::LN_10
}

/// Fraction of absolute errors `err` within `k` times their `sigma` (a zero
/// sigma covers only a zero error); 0 for no rows.
pub fn fraction_within(err: &[f64], sigma: &[f64], k: f64) -> f64 {
    err.iter()
        .zip(sigma)
        .filter(|(e, s)| **e <= k * **s)
        .count() as f64
        / err.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_metrics_by_hand() {
        let y = [1.0, 2.0, 4.0];
        let p = [1.5, 1.5, 5.0];
        let m = RegressionMetrics::compute(&p, &y);
        assert!((m.mae - (0.5 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((m.bias - (0.5 - 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((m.mape.unwrap() - 100.0 * (0.5 + 0.25 + 0.25) / 3.0).abs() < 1e-9);
        assert!((m.median_relative_error - 0.25).abs() < 1e-12);
        assert!(m.pearson_r > 0.9);
    }

    #[test]
    fn contamination_and_completeness() {
        // truth:     0 0 0 1 1
        // predicted: 0 0 1 0 1 -> predicted RGB: 3, of which 1 is RC.
        let m = ClassificationMetrics::compute(&[0, 0, 1, 0, 1], &[0, 0, 0, 1, 1]);
        assert!((m.contamination - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.completeness - 2.0 / 3.0).abs() < 1e-12);
    }

    /// Written as the untyped `serde_json::Value` maps were: keys sorted,
    /// NaN as null; read back by the field names, null as NaN.
    #[test]
    fn label_metrics_json_is_the_untyped_one() {
        let reg = LabelMetrics::Regression(RegressionMetrics::compute(&[1.5, 1.5], &[1.0, -2.0]));
        let cls = LabelMetrics::Classification(ClassificationMetrics::compute(&[1, 1], &[1, 1]));
        for m in [&reg, &cls] {
            let typed = serde_json::to_string_pretty(m).unwrap();
            let untyped = serde_json::to_string_pretty(&serde_json::to_value(m).unwrap()).unwrap();
            assert_eq!(typed, untyped);
            let back: LabelMetrics = serde_json::from_str(&typed).unwrap();
            assert_eq!(serde_json::to_string_pretty(&back).unwrap(), typed);
        }
        assert!(reg.regression().unwrap().mape.is_none());
        let c =
            serde_json::from_str::<LabelMetrics>(&serde_json::to_string(&cls).unwrap()).unwrap();
        let c = c.classification().unwrap();
        assert_eq!((c.n, c.accuracy), (2, 1.0));
        assert!(c.completeness.is_nan() && c.contamination.is_nan());
        assert_eq!(cell(c.contamination), "-");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(0.123456), "0.1235");
    }

    #[test]
    fn tension_is_zero_at_agreement_and_grows() {
        assert_eq!(log10_tension(1.0, 0.1, 1.0, 0.1), 0.0);
        assert!(log10_tension(1.0, 0.1, 2.0, 0.1) > 1.0);
    }
}

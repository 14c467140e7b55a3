//! Pseudo-continuum normalisation: an iteratively clipped polynomial fit divided out
//! (LASSO-MLPNet's alternative to min-max normalisation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContinuumFit {
    /// Polynomial degree (6 in LASSO-MLPNet).
    pub degree: usize,
    /// Number of clip-and-refit rounds after the first fit.
    pub iterations: usize,
    /// Pixels more than this many sigma below the fit are dropped (absorption lines).
    pub lower_sigma: f64,
    /// Pixels more than this many sigma above the fit are dropped (emission, cosmics).
    pub upper_sigma: f64,
}

impl Default for ContinuumFit {
    fn default() -> Self {
        Self {
            degree: 6,
            iterations: 5,
            lower_sigma: 1.0,
            upper_sigma: 3.0,
        }
    }
}

impl ContinuumFit {
    /// Fits the continuum of `flux` sampled at `wavelength` and returns it.
    /// Zero and non-finite pixels never take part in the fit. `None` when too
    /// few pixels remain to fit the polynomial.
    pub fn continuum(&self, wavelength: &[f64], flux: &[f64]) -> Option<Vec<f64>> {
        let n = flux.len();
        if n < 2 {
            return None;
        }
        let (w0, w1) = (wavelength[0], wavelength[n - 1]);
        // Map to [-1, 1] to keep the normal equations well conditioned.
        let t: Vec<f64> = wavelength
            .iter()
            .map(|w| 2.0 * (w - w0) / (w1 - w0) - 1.0)
            .collect();
        let base: Vec<bool> = flux.iter().map(|f| *f != 0.0 && f.is_finite()).collect();
        let mut mask = base.clone();
        let mut coef = self.fit(&t, flux, &mask)?;
        for _ in 0..self.iterations {
            let fit = evaluate(&coef, &t);
            let residual: Vec<f64> = flux.iter().zip(&fit).map(|(f, c)| f - c).collect();
            let used: Vec<f64> = residual
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(r, _)| *r)
                .collect();
            let sigma = std_dev(&used);
            for ((m, b), r) in mask.iter_mut().zip(&base).zip(&residual) {
                *m = *b && *r > -self.lower_sigma * sigma && *r < self.upper_sigma * sigma;
            }
            coef = self.fit(&t, flux, &mask)?;
        }
        Some(evaluate(&coef, &t))
    }

    /// `flux / continuum` where the continuum is positive and the pixel is real, else 0.
    pub fn normalise(&self, wavelength: &[f64], flux: &[f64]) -> Option<Vec<f64>> {
        let cont = self.continuum(wavelength, flux)?;
        Some(
            flux.iter()
                .zip(&cont)
                .map(|(f, c)| {
                    if *c > 0.0 && *f != 0.0 && f.is_finite() {
                        f / c
                    } else {
                        0.0
                    }
                })
                .collect(),
        )
    }

    /// Least-squares polynomial coefficients (lowest power first) over masked pixels.
    fn fit(&self, t: &[f64], y: &[f64], mask: &[bool]) -> Option<Vec<f64>> {
        let m = self.degree + 1;
        let mut ata = vec![0.0; m * m];
        let mut aty = vec![0.0; m];
        let mut count = 0usize;
        let mut powers = vec![0.0; m];
        for ((ti, yi), _) in t.iter().zip(y).zip(mask).filter(|(_, k)| **k) {
            count += 1;
            let mut p = 1.0;
            for pw in powers.iter_mut() {
                *pw = p;
                p *= ti;
            }
            for r in 0..m {
                aty[r] += powers[r] * yi;
                for c in 0..m {
                    ata[r * m + c] += powers[r] * powers[c];
                }
            }
        }
        if count < m {
            return None;
        }
        solve(ata, aty, m)
    }
}

fn evaluate(coef: &[f64], t: &[f64]) -> Vec<f64> {
    t.iter()
        .map(|x| coef.iter().rev().fold(0.0, |acc, c| acc * x + c))
        .collect()
}

fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Gaussian elimination with partial pivoting on an m x m system.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, m: usize) -> Option<Vec<f64>> {
    for col in 0..m {
        let pivot =
            (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[pivot * m + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..m {
                a.swap(col * m + k, pivot * m + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..m {
            let factor = a[row * m + col] / a[col * m + col];
            for k in col..m {
                a[row * m + k] -= factor * a[col * m + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let s: f64 = (row + 1..m).map(|k| a[row * m + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * m + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_polynomial() {
        let w: Vec<f64> = (0..200).map(|i| 4000.0 + i as f64).collect();
        let f: Vec<f64> = w
            .iter()
            .map(|x| {
                let t = (x - 4100.0) / 100.0;
                2.0 + 0.3 * t - 0.1 * t * t + 0.05 * t.powi(3)
            })
            .collect();
        let fit = ContinuumFit::default();
        let cont = fit.continuum(&w, &f).unwrap();
        for (a, b) in f.iter().zip(&cont) {
            assert!((a - b).abs() < 1e-9);
        }
    }
}

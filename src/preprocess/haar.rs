//! Haar wavelet soft-threshold denoising, arithmetic-compatible with PyWavelets'
//! `wavedec` / `threshold(mode="soft")` / `waverec` for the 'haar' wavelet in the
//! default 'symmetric' extension mode.

use std::f64::consts::FRAC_1_SQRT_2;

/// Denoises by decomposing to `levels` (or the maximum useful level), shrinking
/// each level's detail coefficients by `fraction` times that level's largest
/// coefficient, and reconstructing (METHOD section 3, step 6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaarDenoiser {
    pub fraction: f64,
    pub levels: Option<usize>,
}

/// `pywt.dwt_max_level(len, 2)`: floor(log2(len / (filter_len - 1))) for Haar.
pub fn max_level(len: usize) -> usize {
    if len < 2 {
        0
    } else {
        (usize::BITS - 1 - len.leading_zeros()) as usize
    }
}

/// Single-level Haar analysis: `(cA, cD)`, each `ceil(len / 2)` long. An odd
/// length is extended symmetrically (the last sample repeated), as pywt does.
pub fn dwt(x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let half = x.len().div_ceil(2);
    let mut approx = Vec::with_capacity(half);
    let mut detail = Vec::with_capacity(half);
    for i in 0..half {
        let a = x[2 * i];
        let b = *x.get(2 * i + 1).unwrap_or(&a);
        approx.push((a + b) * FRAC_1_SQRT_2);
        detail.push((a - b) * FRAC_1_SQRT_2);
    }
    (approx, detail)
}

/// Single-level Haar synthesis: `2 * len` samples.
pub fn idwt(approx: &[f64], detail: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(2 * approx.len());
    for (a, d) in approx.iter().zip(detail) {
        out.push((a + d) * FRAC_1_SQRT_2);
        out.push((a - d) * FRAC_1_SQRT_2);
    }
    out
}

/// `pywt.wavedec(x, 'haar', level=levels)`: `[cA_n, cD_n, ..., cD_1]`.
pub fn wavedec(x: &[f64], levels: usize) -> Vec<Vec<f64>> {
    let mut details = Vec::with_capacity(levels);
    let mut approx = x.to_vec();
    for _ in 0..levels {
        let (a, d) = dwt(&approx);
        details.push(d);
        approx = a;
    }
    let mut coeffs = Vec::with_capacity(levels + 1);
    coeffs.push(approx);
    coeffs.extend(details.into_iter().rev());
    coeffs
}

/// `pywt.waverec(coeffs, 'haar')`: an approximation one longer than the next
/// detail array is trimmed before each synthesis step, as pywt does.
pub fn waverec(coeffs: &[Vec<f64>]) -> Vec<f64> {
    let mut approx = coeffs[0].clone();
    for detail in &coeffs[1..] {
        if approx.len() == detail.len() + 1 {
            approx.pop();
        }
        approx = idwt(&approx, detail);
    }
    approx
}

/// Soft threshold `w -> sign(w) * max(|w| - t, 0)` (pywt `mode="soft"`).
pub fn soft_threshold(values: &mut [f64], t: f64) {
    for w in values {
        let shrunk = (w.abs() - t).max(0.0);
        *w = if *w > 0.0 {
            shrunk
        } else if *w < 0.0 {
            -shrunk
        } else {
            0.0
        };
    }
}

impl HaarDenoiser {
    pub fn levels_for(&self, len: usize) -> usize {
        let max = max_level(len);
        self.levels.map_or(max, |l| l.min(max))
    }

    pub fn denoise(&self, x: &[f64]) -> Vec<f64> {
        let mut coeffs = wavedec(x, self.levels_for(x.len()));
        for detail in coeffs.iter_mut().skip(1) {
            // The largest (signed) coefficient of the level, as the common pywt recipe uses.
            let peak = detail.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            soft_threshold(detail, self.fraction * peak);
        }
        let mut out = waverec(&coeffs);
        out.truncate(x.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_level_matches_pywt() {
        // pywt.dwt_max_level(n, 2) for these n: 0, 1, 11, 12, 12
        assert_eq!(max_level(1), 0);
        assert_eq!(max_level(2), 1);
        assert_eq!(max_level(4001), 11);
        assert_eq!(max_level(4096), 12);
        assert_eq!(max_level(8191), 12);
    }

    #[test]
    fn perfect_reconstruction_without_threshold() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64 / 13.0).collect();
        let rec = waverec(&wavedec(&x, max_level(x.len())));
        for (a, b) in x.iter().zip(&rec) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
}

//! The output wavelength grid and linear resampling onto it.

use serde::{Deserialize, Serialize};

/// A uniform wavelength grid: `start + step * i` for `i` in `0..len` (Angstrom).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WavelengthGrid {
    pub start: f64,
    pub step: f64,
    pub len: usize,
}

impl Default for WavelengthGrid {
    /// 4000, 4001, ..., 8095 Angstrom: 4096 pixels (METHOD section 3, step 2).
    fn default() -> Self {
        Self {
            start: 4000.0,
            step: 1.0,
            len: 4096,
        }
    }
}

impl WavelengthGrid {
    pub fn wavelengths(&self) -> Vec<f64> {
        (0..self.len)
            .map(|i| self.start + self.step * i as f64)
            .collect()
    }

    pub fn end(&self) -> f64 {
        self.start + self.step * (self.len.saturating_sub(1)) as f64
    }
}

/// Linear interpolation of `(xp, fp)` at increasing points `x`, with 0 outside
/// `[xp[0], xp[last]]`: the same arithmetic as `numpy.interp(x, xp, fp, left=0, right=0)`.
///
/// `xp` must be strictly increasing and non-empty; `out` must have `x.len()` slots.
pub fn interp_into(x: &[f64], xp: &[f64], fp: &[f64], out: &mut [f64]) {
    debug_assert_eq!(xp.len(), fp.len());
    debug_assert_eq!(x.len(), out.len());
    let n = xp.len();
    if n == 0 {
        out.fill(0.0);
        return;
    }
    let (first, last) = (xp[0], xp[n - 1]);
    let mut j = 0usize;
    for (xi, o) in x.iter().zip(out.iter_mut()) {
        let xi = *xi;
        *o = if !(xi >= first) || xi > last {
            0.0
        } else if xi == last {
            fp[n - 1]
        } else {
            // Advance to the interval xp[j] <= xi < xp[j+1]; x is increasing so j only grows.
            while xp[j + 1] <= xi {
                j += 1;
            }
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            let mut v = slope * (xi - xp[j]) + fp[j];
            if v.is_nan() {
                v = slope * (xi - xp[j + 1]) + fp[j + 1];
                if v.is_nan() && fp[j] == fp[j + 1] {
                    v = fp[j];
                }
            }
            v
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_matches_numpy_edges_and_interior() {
        // numpy.interp([0.5, 1, 1.5, 2.75, 3, 3.5], [1, 2, 3], [10, 20, 40], left=0, right=0)
        // -> [0, 10, 15, 35, 40, 0]
        let x = [0.5, 1.0, 1.5, 2.75, 3.0, 3.5];
        let mut out = [f64::NAN; 6];
        interp_into(&x, &[1.0, 2.0, 3.0], &[10.0, 20.0, 40.0], &mut out);
        assert_eq!(out, [0.0, 10.0, 15.0, 35.0, 40.0, 0.0]);
    }

    #[test]
    fn default_grid_is_the_papers() {
        let g = WavelengthGrid::default();
        let w = g.wavelengths();
        assert_eq!(w.len(), 4096);
        assert_eq!(w[0], 4000.0);
        assert_eq!(g.end(), 8095.0);
    }
}

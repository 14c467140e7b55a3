//! The training domain of a model: what its training rows covered (label
//! ranges, SNR(g) range, the per-pixel input envelope), for the applicability
//! flags at prediction time. `train` fits it on its training split;
//! `finetune` widens the parent's by the new set's.

use serde::{Deserialize, Serialize};

/// The range of the training data, for applicability flags at prediction time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingDomain {
    /// Per label `[min, max]` of the training split.
    pub label_ranges: Vec<[f64; 2]>,
    /// `[min, max]` SNR(g) of the training split (NaN-free values only).
    pub snrg_range: Option<[f64; 2]>,
    /// Per-pixel range of the training inputs, for the applicability flag.
    #[serde(default)]
    pub input_envelope: Option<InputEnvelope>,
}

impl TrainingDomain {
    /// The domain of training rows `rows`: per label `[min, max]` of the
    /// row-major `[N, n_labels]` `labels`, the range of the rows' finite
    /// `snrg` values (none when no row has one), and the envelope of the
    /// row-major `inputs` with `len` values each when given (spectra; catalog
    /// features get none).
    pub fn fit(
        labels: &[f32],
        n_labels: usize,
        snrg: &[f64],
        inputs: Option<(&[f32], usize)>,
        rows: &[usize],
    ) -> Self {
        let snr: Vec<f64> = rows
            .iter()
            .map(|&r| snrg[r])
            .filter(|s| s.is_finite())
            .collect();
        let snrg_range = (!snr.is_empty()).then(|| {
            snr.iter()
                .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &v| {
                    [lo.min(v), hi.max(v)]
                })
        });
        Self {
            label_ranges: label_ranges(labels, n_labels, rows),
            snrg_range,
            input_envelope: inputs.map(|(inputs, len)| InputEnvelope::fit(inputs, len, rows)),
        }
    }

    /// Widens this domain to cover `other` too: label and SNR(g) ranges
    /// joined, the input envelope widened pixel by pixel (kept as it is when
    /// either side has none).
    pub fn widen(&mut self, other: &TrainingDomain) {
        for (r, n) in self.label_ranges.iter_mut().zip(&other.label_ranges) {
            *r = [r[0].min(n[0]), r[1].max(n[1])];
        }
        self.snrg_range = match (self.snrg_range, other.snrg_range) {
            (Some([lo, hi]), Some([a, b])) => Some([lo.min(a), hi.max(b)]),
            (mine, theirs) => mine.or(theirs),
        };
        if let (Some(env), Some(add)) = (&mut self.input_envelope, &other.input_envelope) {
            for k in 0..env.lo.len() {
                env.lo[k] = env.lo[k].min(add.lo[k]);
                env.hi[k] = env.hi[k].max(add.hi[k]);
            }
        }
    }
}

/// Per label `[min, max]` of `rows` of row-major `[N, l]` values.
pub fn label_ranges(values: &[f32], l: usize, rows: &[usize]) -> Vec<[f64; 2]> {
    (0..l)
        .map(|j| {
            rows.iter()
                .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &r| {
                    let v = values[r * l + j] as f64;
                    [lo.min(v), hi.max(v)]
                })
        })
        .collect()
}

/// The per-pixel `[lo, hi]` envelope of the training inputs. An input with many
/// pixels outside it looks like nothing the network was trained on (a cheap
/// applicability-domain test: different spectral types, artefacts, bad
/// calibration), even when its prediction looks ordinary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputEnvelope {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// Flag an input when more than this fraction of its pixels lie outside.
    pub max_outside_fraction: f64,
}

impl InputEnvelope {
    /// Default threshold: 5% of the pixels (205 of 4096).
    pub const DEFAULT_MAX_OUTSIDE: f64 = 0.05;

    /// The envelope of `rows` of row-major `inputs` with `len` values each.
    pub fn fit(inputs: &[f32], len: usize, rows: &[usize]) -> Self {
        let mut lo = vec![f32::INFINITY; len];
        let mut hi = vec![f32::NEG_INFINITY; len];
        for &r in rows {
            for (k, v) in inputs[r * len..(r + 1) * len].iter().enumerate() {
                lo[k] = lo[k].min(*v);
                hi[k] = hi[k].max(*v);
            }
        }
        Self {
            lo,
            hi,
            max_outside_fraction: Self::DEFAULT_MAX_OUTSIDE,
        }
    }

    /// Fraction of `x`'s pixels outside the envelope.
    pub fn outside_fraction(&self, x: &[f32]) -> f64 {
        let outside = x
            .iter()
            .zip(self.lo.iter().zip(&self.hi))
            .filter(|(v, (lo, hi))| **v < **lo || **v > **hi)
            .count();
        outside as f64 / x.len().max(1) as f64
    }
}

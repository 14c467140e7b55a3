//! Which rows go where: the validation split, bootstrap resamples and batch
//! order, drawn with SplitMix64 so a seed means the same thing on every
//! platform and version, and [`gather`] to copy the chosen rows out.

/// SplitMix64 (Steele et al. 2014): tiny, fast, and stable by construction.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller, one value per two uniforms).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // (0, 1]: ln is finite
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// A seed derived from a parent seed and a stream number (member, epoch, ...).
pub fn derive_seed(parent: u64, stream: u64) -> u64 {
    SplitMix64::new(parent ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// Row indices of a train/validation split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

impl Split {
    /// A fixed-seed split of `0..n`, `round(val_fraction * n)` rows (at least 1) for validation.
    pub fn new(n: usize, val_fraction: f64, seed: u64) -> Self {
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        let n_val = ((val_fraction * n as f64).round() as usize).clamp(1, n.saturating_sub(1));
        let mut val = order[..n_val].to_vec();
        let mut train = order[n_val..].to_vec();
        val.sort_unstable();
        train.sort_unstable();
        Self { train, val }
    }
}

/// A bootstrap resample (with replacement, same size) of `rows`.
pub fn bootstrap(rows: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    (0..rows.len())
        .map(|_| rows[rng.below(rows.len())])
        .collect()
}

/// Rows `rows` of row-major `inputs` with `per` values each.
pub fn gather(inputs: &[f32], per: usize, rows: &[usize]) -> Vec<f32> {
    let mut buf = Vec::with_capacity(rows.len() * per);
    for &r in rows {
        buf.extend_from_slice(&inputs[r * per..(r + 1) * per]);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_disjoint_and_complete() {
        let a = Split::new(100, 0.2, 7);
        assert_eq!(a, Split::new(100, 0.2, 7));
        assert_ne!(a, Split::new(100, 0.2, 8));
        assert_eq!(a.val.len(), 20);
        let mut all: Vec<usize> = a.train.iter().chain(&a.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn bootstrap_is_deterministic_and_resamples() {
        let rows: Vec<usize> = (0..200).collect();
        let b = bootstrap(&rows, 3);
        assert_eq!(b, bootstrap(&rows, 3));
        assert_eq!(b.len(), 200);
        let mut unique = b.clone();
        unique.sort_unstable();
        unique.dedup();
        // About 1 - 1/e of rows appear in a bootstrap sample.
        assert!((110..145).contains(&unique.len()), "{}", unique.len());
    }
}

//! Running-median smoothing (LASSO-MLPNet's alternative to wavelet denoising).

/// Median over a centred window of odd `width`, the edges extended by repeating
/// the end samples: `scipy.ndimage.median_filter(x, size=width, mode="nearest")`.
pub fn median_filter(x: &[f64], width: usize) -> Vec<f64> {
    let n = x.len();
    if n == 0 || width <= 1 {
        return x.to_vec();
    }
    let half = width / 2;
    let mut window = Vec::with_capacity(width);
    (0..n)
        .map(|i| {
            window.clear();
            window.extend((0..width).map(|k| {
                let j = (i + k).saturating_sub(half).min(n - 1);
                x[j]
            }));
            window.sort_by(f64::total_cmp);
            window[half]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_three_with_nearest_edges() {
        // scipy.ndimage.median_filter([3, 1, 2, 9, 4], size=3, mode="nearest") -> [3, 2, 2, 4, 4]
        assert_eq!(
            median_filter(&[3.0, 1.0, 2.0, 9.0, 4.0], 3),
            vec![3.0, 2.0, 2.0, 4.0, 4.0]
        );
    }
}

//! A member's training curve: one [`EpochRecord`] per epoch, written as
//! `member-NN.csv` (a column per label's validation value) and read back for
//! `curves.png`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;

/// One row of a member's training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// The selection score (lower is better).
    pub val_score: f64,
    /// Validation MAE per label in label units (regression) or accuracy (classification).
    pub val_per_label: Vec<f64>,
    pub seconds: f64,
}

/// Writes `curves` to the CSV `path`: epoch, training and validation loss,
/// selection score, `val_<label>` for each of `names`, seconds.
pub(crate) fn write_curves(
    path: &Path,
    names: &[String],
    curves: &[EpochRecord],
) -> std::io::Result<()> {
    write_atomically(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp)?;
        let mut header = vec![
            "epoch".to_string(),
            "train_loss".into(),
            "val_loss".into(),
            "val_score".into(),
        ];
        header.extend(names.iter().map(|n| format!("val_{n}")));
        header.push("seconds".into());
        w.write_record(&header)?;
        for r in curves {
            let mut row = vec![
                r.epoch.to_string(),
                r.train_loss.to_string(),
                r.val_loss.to_string(),
                r.val_score.to_string(),
            ];
            row.extend(r.val_per_label.iter().map(|v| v.to_string()));
            row.push(format!("{:.3}", r.seconds));
            w.write_record(&row)?;
        }
        w.flush()
    })
}

/// (epoch, training loss, validation loss, validation score) rows of a member's CSV.
pub(crate) fn read_curves(path: &Path) -> std::io::Result<crate::plot::Curve> {
    let mut r = csv::Reader::from_path(path)?;
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        let num = |i: usize| {
            rec.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        out.push((num(0) as usize, num(1), num(2), num(3)));
    }
    Ok(out)
}

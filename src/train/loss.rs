//! The training losses as functions of a batch's predictions and its rows'
//! targets: Huber, MAE or SMAPE on standardised labels (regression),
//! cross-entropy on class indices (classification). The member loop and its
//! validation both call [`batch_loss`].

use burn::nn::loss::{CrossEntropyLossConfig, HuberLossConfig, Reduction};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::dataset::Targets;
use crate::ensemble::{Loss, Standardiser, Task, TrainConfig};

/// The mean loss of `pred` (standardised values or logits, `[rows, outputs]`)
/// on dataset rows `rows` of `targets`: the regression loss of `training`
/// when the task is regression (it has a standardiser), else cross-entropy.
pub(crate) fn batch_loss(
    training: &TrainConfig,
    standardiser: Option<&Standardiser>,
    targets: &Targets,
    pred: Tensor<2>,
    rows: &[usize],
    device: &Device,
) -> Tensor<1> {
    match (targets.task, standardiser) {
        (Task::Regress, Some(s)) => {
            let y = standardised_targets(targets, s, rows, device);
            regression(training.loss, training.huber_delta, s, pred, y, device)
        }
        _ => cross_entropy(pred, class_targets(targets, rows), device),
    }
}

/// Labels of `rows` standardised with `s`, `[rows, labels]`.
pub(crate) fn standardised_targets(
    targets: &Targets,
    s: &Standardiser,
    rows: &[usize],
    device: &Device,
) -> Tensor<2> {
    let l = targets.names.len();
    let y: Vec<f32> = rows
        .iter()
        .flat_map(|&r| (0..l).map(move |j| s.forward(j, targets.values[r * l + j] as f64) as f32))
        .collect();
    Tensor::<2>::from_data(TensorData::new(y, [rows.len(), l]), device)
}

/// Class indices of `rows` (a classification target holds one label, the class).
pub(crate) fn class_targets(targets: &Targets, rows: &[usize]) -> Vec<i64> {
    rows.iter().map(|&r| targets.values[r] as i64).collect()
}

/// Mean regression loss of standardised predictions `pred` against
/// standardised targets `y` (both `[n, l]`). SMAPE is taken in label units,
/// so it needs the standardiser `s` to undo the standardisation.
pub(crate) fn regression(
    loss: Loss,
    huber_delta: f64,
    s: &Standardiser,
    pred: Tensor<2>,
    y: Tensor<2>,
    device: &Device,
) -> Tensor<1> {
    match loss {
        Loss::Huber => huber(huber_delta, pred, y),
        Loss::Mae => mae(pred, y),
        Loss::Smape => smape(s, pred, y, device),
    }
}

/// Huber loss with threshold `delta` (the DenseNet paper), mean over every value.
pub(crate) fn huber(delta: f64, pred: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    HuberLossConfig::new(delta as f32)
        .init()
        .forward(pred, y, Reduction::Mean)
}

/// Mean absolute error over every value.
pub(crate) fn mae(pred: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (pred - y).abs().mean()
}

/// Symmetric mean absolute percentage error, `2|p - y| / (|p| + |y|)`, in
/// label units: standardised `pred` and `y` are mapped back with `s` first.
pub(crate) fn smape(s: &Standardiser, pred: Tensor<2>, y: Tensor<2>, device: &Device) -> Tensor<1> {
    let l = s.std.len();
    // Back to label units: p * std + mean, per label.
    let row = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        Tensor::<2>::from_data(TensorData::new(v, [1, l]), device)
    };
    let (std, mean) = (row(&s.std), row(&s.mean));
    let p = pred * std.clone() + mean.clone();
    let y = y * std + mean;
    let num = (p.clone() - y.clone()).abs().mul_scalar(2.0);
    let den = p.abs() + y.abs() + 1e-8;
    (num / den).mean()
}

/// Cross-entropy of logits `pred` `[n, classes]` against class indices `y`.
pub(crate) fn cross_entropy(pred: Tensor<2>, y: Vec<i64>, device: &Device) -> Tensor<1> {
    let n = y.len();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device);
    CrossEntropyLossConfig::new().init(device).forward(pred, y)
}

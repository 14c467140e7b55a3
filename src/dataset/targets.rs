//! The labels a run learns or is scored on: which columns of a dataset, and
//! what they mean for the task (regression values, or integer classes).
//! Training, fine-tuning, evaluation and the baselines all select them here.

use crate::ensemble::Task;

use super::Dataset;

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("the dataset has no label '{name}' (it has: {have})")]
    NoSuchLabel { name: String, have: String },
    #[error("no label columns selected")]
    NoneSelected,
    #[error("classification takes exactly one integer label column")]
    ClassifyNeedsOneColumn,
    #[error("classification labels must be integers 0, 1, ...; found {0}")]
    NotAClass(f32),
}

/// Row-major labels selected from a dataset, and what they mean for training.
pub struct Targets {
    pub names: Vec<String>,
    /// `[N, L]` label values.
    pub values: Vec<f32>,
    pub task: Task,
    pub classes: usize,
}

/// The `columns` of `data` (default: every label) for `task`; classification
/// takes one column of integers 0, 1, ... and has at least two classes.
pub fn select_targets(
    data: &Dataset,
    columns: Option<&[String]>,
    task: Task,
) -> Result<Targets, TargetsError> {
    let names: Vec<String> = match columns {
        Some(c) => c.to_vec(),
        None => data.label_names.clone(),
    };
    let idx = names
        .iter()
        .map(|n| {
            data.label_names
                .iter()
                .position(|l| l == n)
                .ok_or_else(|| TargetsError::NoSuchLabel {
                    name: n.clone(),
                    have: data.label_names.join(","),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if idx.is_empty() {
        return Err(TargetsError::NoneSelected);
    }
    let values: Vec<f32> = (0..data.len())
        .flat_map(|i| idx.iter().map(move |&j| data.label_row(i)[j]))
        .collect();
    let classes = match task {
        Task::Regress => 0,
        Task::Classify => {
            if names.len() != 1 {
                return Err(TargetsError::ClassifyNeedsOneColumn);
            }
            if let Some(v) = values.iter().find(|v| !(v.fract() == 0.0 && **v >= 0.0)) {
                return Err(TargetsError::NotAClass(*v));
            }
            (values.iter().fold(0f32, |m, v| m.max(*v)) as usize + 1).max(2)
        }
    };
    Ok(Targets {
        names,
        values,
        task,
        classes,
    })
}

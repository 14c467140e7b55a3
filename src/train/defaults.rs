//! The training settings used when nothing else sets them: the library's
//! [`train`](super::train) callers and `spectrain train` start from the same
//! values.

use crate::ensemble::{Loss, Task, TrainConfig};
use crate::model::Arch;

/// The published settings for `task` on `arch`: [`TrainConfig::default`]
/// (the DenseNet paper's regression, METHOD section 5), with the paper's
/// classification learning rate of 5e-4, and the MAE loss for the
/// catalog-feature MLP of METHOD section 8.
pub fn default_training(task: Task, arch: Arch) -> TrainConfig {
    let mut t = TrainConfig {
        task,
        ..TrainConfig::default()
    };
    if task == Task::Classify {
        t.lr = 5e-4;
    }
    if arch == Arch::Mlp {
        t.loss = Loss::Mae;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_follows_task_and_arch() {
        let d = default_training(Task::Regress, Arch::Densenet);
        assert_eq!((d.lr, d.loss), (1.5e-4, Loss::Huber));
        let c = default_training(Task::Classify, Arch::Densenet);
        assert_eq!((c.task, c.lr), (Task::Classify, 5e-4));
        let m = default_training(Task::Regress, Arch::Mlp);
        assert_eq!((m.lr, m.loss), (1.5e-4, Loss::Mae));
    }
}

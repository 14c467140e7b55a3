//! `train --member K` and `train --finish`: an ensemble trained as separate
//! tasks (a Slurm job array) is the ensemble one `train` process writes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{assert_same_model, predictions, real_dataset, spectrain, tiny_config};
use spectrain::lock::{FileLock, LockMode};

fn train(data: &Path, config: &Path, out: &Path) -> Command {
    let mut c = spectrain();
    c.args(["-q", "train", "--backend", "cpu", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out);
    c
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

fn ok(c: &mut Command) {
    let o = run(c);
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Fails, saying `what` on stderr.
fn refused(c: &mut Command, what: &str) {
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{c:?} should have failed");
    assert!(err.contains(what), "{c:?}: expected {what:?} in: {err}");
}

#[test]
fn member_tasks_build_the_single_process_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let whole = tmp.path().join("whole");
    ok(&mut train(&data, &config, &whole));

    let parts = tmp.path().join("parts");
    let task = |k: &str| {
        let mut c = train(&data, &config, &parts);
        c.args(["--member", k]);
        c
    };
    let finish = || {
        let mut c = train(&data, &config, &parts);
        c.arg("--finish");
        c
    };
    refused(&mut finish(), "no spec.json");
    ok(&mut task("2"));
    refused(&mut finish(), "missing: 0, 1");
    // Two tasks starting together: one writes spec.json, the other checks it.
    let spawn = |k: &str| {
        let mut c = task(k);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn("0"), spawn("1"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    refused(&mut task("1"), "member 1 has already started");
    ok(task("1").arg("--resume"));
    refused(&mut task("3"), "numbered 0 to 2");
    refused(task("0").args(["--seed", "7"]), "spec on disk differs");
    {
        // A whole run (or the finishing step) in progress keeps member tasks out...
        let _whole_run = FileLock::acquire(&parts.join("train.lock"), LockMode::Exclusive).unwrap();
        refused(task("0").arg("--resume"), "in use by another run");
    }
    {
        // ...and a running member task keeps the finishing step out.
        let _member = FileLock::acquire(&parts.join("train.lock"), LockMode::Shared).unwrap();
        refused(&mut finish(), "in use by another run");
    }
    ok(&mut finish());

    assert_same_model(&whole, &parts, &data);
}

/// A member task on one core must train what the whole run trains on two: the
/// CPU kernels' chunking and sums may not follow the thread count.
#[test]
fn the_thread_count_does_not_change_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(train(&data, &config, &one).args(["-j", "1"]));
    ok(train(&data, &config, &two).args(["-j", "2"]));
    assert_eq!(predictions(&one, &data), predictions(&two, &data));
}

//! `train --parallel-members N`: members trained at once, each in a process of
//! its own, give the model one process trains; a failed or killed run
//! continues with `--resume` to that same model.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{assert_same_model, real_dataset, spectrain, tiny_config};
use spectrain::lock::{FileLock, LockMode};

/// `train` on the CPU with `args`, into `out`.
fn train(out: &Path, args: &[&str]) -> Command {
    let mut c = spectrain();
    c.args(["-q", "train", "--backend", "cpu"])
        .args(args)
        .arg("--out")
        .arg(out);
    c
}

fn ok(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Fails, saying `what` on stderr.
fn refused(c: &mut Command, what: &str) -> Output {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{c:?} should have failed");
    assert!(err.contains(what), "{c:?}: expected {what:?} in: {err}");
    o
}

/// The two model directories hold the same model, and `b` says it trained
/// `at_once` members at a time.
fn same_model(a: &Path, b: &Path, data: &Path, at_once: u64) {
    assert_same_model(a, b, data);
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(provenance["members_at_once"], at_once);
    assert_eq!(provenance["completed"], true);
}

/// The recipe from a `--config` file with flags on top; the parent's thread
/// count is split between its member processes.
#[test]
fn parallel_members_train_the_sequential_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let recipe = |out: &Path, n: &str| {
        let mut c = train(out, &["--epochs", "5", "--seed", "11", "--lr", "0.002"]);
        c.arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["-j", "2", "--parallel-members", n]);
        c
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let o1 = ok(&mut recipe(&one, "1"));
    let o2 = ok(&mut recipe(&two, "2"));
    same_model(&one, &two, &data, 2);
    // The same summary, but for the first line's wall time and directory.
    let (s1, s2) = (
        String::from_utf8_lossy(&o1.stdout).into_owned(),
        String::from_utf8_lossy(&o2.stdout).into_owned(),
    );
    assert!(s2.starts_with("train: 3 members on"), "{s2}");
    assert_eq!(
        s1.lines().skip(1).collect::<Vec<_>>(),
        s2.lines().skip(1).collect::<Vec<_>>()
    );
}

/// The recipe from flags alone (an MLP, with dropout and every optional
/// setting), one process per member.
#[test]
fn every_flag_reaches_the_member_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let data_arg = format!("--data={}", data.display());
    let recipe = |out: &Path, n: &str| {
        let mut c = train(
            out,
            &[
                &data_arg,
                "--arch",
                "mlp",
                "--hidden=16,8",
                "--dropout",
                "0.2",
                "--columns",
                "teff,logg",
                "--loss",
                "mae",
                "--members",
                "3",
                "--epochs",
                "4",
                "--batch",
                "4",
                "--lr",
                "3e-3",
                "--lr-schedule",
                "constant",
                "--weight-decay",
                "0.01",
                "--val-fraction",
                "0.25",
                "--seed",
                "5",
            ],
        );
        c.arg(format!("--parallel-members={n}"));
        c
    };
    let (one, three) = (tmp.path().join("one"), tmp.path().join("three"));
    ok(&mut recipe(&one, "1"));
    ok(&mut recipe(&three, "3"));
    same_model(&one, &three, &data, 3);
}

/// A member process that fails stops the run with an error naming it; the
/// others' work is kept and `--resume` completes the model.
#[test]
fn a_failed_member_is_named_and_resume_completes_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let recipe = |out: &Path| {
        let mut c = train(out, &[]);
        c.arg("--data").arg(&data).arg("--config").arg(&config);
        c
    };
    let (want, got) = (tmp.path().join("want"), tmp.path().join("got"));
    ok(recipe(&want).args(["--parallel-members", "1"]));

    // Member 0 trained as a task, and member 1's checkpoint directory made
    // impossible to create, so member 1 fails where member 2 does not.
    ok(recipe(&got).args(["--member", "0"]));
    let blocker = got.join("member-01.work");
    std::fs::write(&blocker, "not a directory").unwrap();
    let o = refused(
        recipe(&got).args(["--resume", "--parallel-members", "2"]),
        "member 1 failed (exit status 1)",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--resume"), "{err}");
    assert!(
        got.join("member-02.bpk").exists(),
        "member 2 ran to its end"
    );
    assert!(!got.join("metrics.json").exists(), "no finished model");

    std::fs::remove_file(&blocker).unwrap();
    ok(recipe(&got).args(["--resume", "--parallel-members", "2"]));
    same_model(&want, &got, &data, 2);
}

/// The run killed (`kill -9`) once a member has finished: its member
/// processes end with it, and `--resume` completes the model.
#[test]
fn a_killed_run_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let recipe = |out: &Path| {
        let mut c = train(out, &["--epochs", "12"]);
        c.arg("--data").arg(&data).arg("--config").arg(&config);
        c.args(["--parallel-members", "2"]);
        c
    };
    let (want, got) = (tmp.path().join("want"), tmp.path().join("got"));
    ok(&mut recipe(&want));

    let mut parent = recipe(&got).spawn().unwrap();
    let give_up = Instant::now() + Duration::from_secs(300);
    let first_done = || (0..3).any(|m| got.join(format!("member-{m:02}.json")).exists());
    while !first_done() {
        assert!(
            parent.try_wait().unwrap().is_none(),
            "ended before a member finished"
        );
        assert!(Instant::now() < give_up, "no member finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    parent.kill().unwrap();
    parent.wait().unwrap();
    // The member processes end too, releasing the directory.
    while FileLock::acquire(&got.join("train.lock"), LockMode::Exclusive).is_err() {
        assert!(
            Instant::now() < give_up,
            "member processes outlived the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(recipe(&got).arg("--resume"));
    same_model(&want, &got, &data, 2);
}

#[test]
fn zero_or_contradictory_parallel_members_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m");
    let data = ["--data", "data.h5"];
    refused(
        train(&out, &data).args(["--parallel-members", "0"]),
        "expected auto or a number of members of at least 1, got '0'",
    );
    refused(
        train(&out, &data).args(["--parallel-members", "2", "--member", "1"]),
        "cannot be used with",
    );
    refused(
        train(&out, &data).args(["--parallel-members", "2", "--finish"]),
        "cannot be used with",
    );
    assert!(!out.exists());
}

//! `train --member K` and `train --finish`: an ensemble trained as separate
//! tasks (a Slurm job array) is the ensemble one `train` process writes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{real_dataset, spectrain, tiny_network};
use spectrain::lock::{FileLock, LockMode};

/// A tiny DenseNet, three members, a few epochs: `dir/tiny.toml`.
fn tiny_config(dir: &Path) -> PathBuf {
    let t = tiny_network();
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\nstem_channels = {}\ngrowth = {}\nbottleneck = {}\nblock_layers = [1, 1]\n\
             integration = {}\nhidden = {}\nhead_dropout = 0.2\n\n\
             [training]\nmembers = 3\nepochs = 6\nbatch = 4\n",
            t.stem_channels, t.growth, t.bottleneck, t.integration, t.hidden
        ),
    )
    .unwrap();
    path
}

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

/// The tensor data of a burnpack weight file. Its metadata also holds burn's
/// parameter ids, which are random handles that differ between any two runs.
fn weights(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..4], b"NRUB", "not a burnpack file");
    let metadata = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
    let start = (10 + metadata).div_ceil(256) * 256;
    bytes[start..].to_vec()
}

/// Every file of a model directory, minus what differs between any two runs
/// with the same seed: wall-clock times and the weights' parameter ids (and so
/// the weights' checksums, which are checked against their own files instead).
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = common::file_name(&path);
        let bytes = std::fs::read(&path).unwrap();
        let kept = if name.ends_with(".bpk") {
            weights(&bytes)
        } else if let Some(m) = name
            .strip_prefix("member-")
            .and_then(|n| n.strip_suffix(".sha256"))
        {
            // The checksum is of the whole file, parameter ids included: it
            // must match its own weights.
            let m: usize = m.parse().unwrap();
            spectrain::model_dir::ModelDir::new(dir)
                .verify_checksum(m)
                .unwrap();
            b"matches its weights".to_vec()
        } else if name.ends_with(".csv") {
            // The last column is the epoch's wall time.
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
                .collect::<String>()
                .into_bytes()
        } else if name == "metrics.json" || name == "provenance.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            for timing in ["seconds", "started_unix", "wall_seconds"] {
                v.as_object_mut().unwrap().remove(timing);
            }
            v.to_string().into_bytes()
        } else {
            bytes
        };
        files.insert(name, kept);
    }
    files
}

fn predictions(model: &Path, data: &Path) -> Vec<Vec<f32>> {
    let device = burn::tensor::Device::flex();
    let ensemble = spectrain::ensemble::Ensemble::load(model, &device).unwrap();
    let data = spectrain::Dataset::read(data).unwrap();
    ensemble.predict(&data.inputs, 64).members
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

    let (want, got) = (contents(&whole), contents(&parts));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &want {
        assert!(
            bytes == &got[name],
            "{name} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&got[name])
        );
    }
    // Not vacuous: the members are different networks, and the weights are what predicts.
    assert_ne!(want["member-00.bpk"], want["member-01.bpk"]);
    assert_eq!(predictions(&whole, &data), predictions(&parts, &data));
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

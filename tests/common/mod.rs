//! Helpers shared by the integration tests: fixture loading and comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A golden fixture from `tests/fixtures/`, made by `scripts/make_golden.py`.
pub fn fixture(name: &str) -> Value {
    let path = repo().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn path_of(v: &Value) -> PathBuf {
    repo().join(v["path"].as_str().unwrap())
}

/// Asserts `|a - b| <= tol` element-wise, naming the first offending index.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0.0), |(bi, bd), (i, d)| {
            if d > bd || d.is_nan() {
                (i, d)
            } else {
                (bi, bd)
            }
        });
    assert!(
        d <= tol,
        "{what}: index {i}: got {} want {} (|diff| {d:e} > {tol:e})",
        got[i],
        want[i]
    );
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Each broken test file and the reason code it must be rejected with.
pub const BROKEN: [(&str, &str); 7] = [
    ("empty.fits", "empty-file"),
    ("not-fits.fits", "unreadable"),
    ("truncated-half.fits", "unreadable"),
    ("truncated-60pct.fits.gz", "unreadable"),
    ("all-nan-flux.fits.gz", "no-finite-flux"),
    (
        "med-58646-TD192102N424113K01_sp12-076.fits.gz",
        "medium-resolution",
    ),
    ("wrong-shape-3rows.fits", "wrong-layout"),
];

/// The `spectrain` binary under test.
pub fn spectrain() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_spectrain"))
}

/// A network small enough to train in a moment but with every part of the real one.
pub fn tiny_network() -> spectrain::model::DenseNetConfig {
    spectrain::model::DenseNetConfig {
        stem_channels: 8,
        growth: 4,
        bottleneck: 2,
        block_layers: vec![1, 1],
        integration: 4,
        hidden: 16,
        head_dropout: 0.0,
        ..Default::default()
    }
}

/// The real dr10 test spectra with their Teff, log g, [Fe/H], prepared into `dir/data.h5`.
pub fn real_dataset(dir: &Path) -> PathBuf {
    prepared(
        &repo().join("tests/data/dr10"),
        &repo().join("tests/data/dr10/labels.csv"),
        &dir.join("data.h5"),
    )
}

/// The spectra under `spectra` with Teff, log g, [Fe/H] from `labels`,
/// prepared with the published recipe into `out`.
pub fn prepared(spectra: &Path, labels: &Path, out: &Path) -> PathBuf {
    prepared_columns(spectra, labels, &["teff", "logg", "feh"], out)
}

/// The spectra under `spectra` with the label `columns` of `labels`,
/// prepared with the published recipe into `out`.
pub fn prepared_columns(spectra: &Path, labels: &Path, columns: &[&str], out: &Path) -> PathBuf {
    spectrain::prepare::prepare(&spectrain::prepare::PrepareOptions {
        spectra: spectra.to_path_buf(),
        labels: labels.to_path_buf(),
        out: out.to_path_buf(),
        join: spectrain::dataset::JoinKey::Obsid,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        config: spectrain::PreprocessConfig::default(),
        force: false,
        progress: false,
    })
    .unwrap();
    out.to_path_buf()
}

/// burn's CPU backend seeds one process-wide RNG, so trainings in one test
/// process must not overlap for results to be reproducible; cargo runs tests
/// in parallel. Hold this while training or fine-tuning.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `spectrain::train::train`, one training at a time.
pub fn train(
    opts: &spectrain::train::TrainOptions,
) -> Result<spectrain::train::TrainReport, spectrain::train::TrainError> {
    let _one = one_at_a_time();
    spectrain::train::train(opts)
}

/// A fresh CPU training of `model` on every label of `data`.
pub fn train_options(
    data: &Path,
    out: &Path,
    model: spectrain::model::ModelConfig,
    training: spectrain::ensemble::TrainConfig,
) -> spectrain::train::TrainOptions {
    spectrain::train::TrainOptions {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        columns: None,
        training,
        model,
        backend: spectrain::model::BackendChoice::Cpu,
        resume: false,
        force: false,
        progress: false,
    }
}

/// A small MLP for the catalog-table tests.
pub fn tiny_mlp() -> spectrain::model::ModelConfig {
    spectrain::model::ModelConfig::Mlp(spectrain::model::MlpConfig {
        hidden: vec![32, 32],
        ..Default::default()
    })
}

/// A tiny two-member DenseNet trained on the real dr10 test spectra:
/// `(dir/data.h5, dir/model)`.
pub fn tiny_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = real_dataset(dir);
    let model = dir.join("model");
    let training = spectrain::ensemble::TrainConfig {
        members: 2,
        epochs: 2,
        batch: 4,
        ..Default::default()
    };
    let network = spectrain::model::ModelConfig::Densenet(tiny_network());
    train(&train_options(&data, &model, network, training)).unwrap();
    (data, model)
}

/// The tensor data of a burnpack weight file. Its metadata also holds burn's
/// parameter ids, which are random handles that differ between any two runs.
pub fn weights(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..4], b"NRUB", "not a burnpack file");
    let metadata = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
    let start = (10 + metadata).div_ceil(256) * 256;
    bytes[start..].to_vec()
}

/// Every file of a model directory, minus what differs between any two runs
/// with the same seed: wall-clock times, how many members trained at once, and
/// the weights' parameter ids (and so the weights' checksums, which are checked
/// against their own files instead).
pub fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = file_name(&path);
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
            for varies in ["seconds", "started_unix", "wall_seconds", "members_at_once"] {
                v.as_object_mut().unwrap().remove(varies);
            }
            v.to_string().into_bytes()
        } else {
            bytes
        };
        files.insert(name, kept);
    }
    files
}

/// Every member's predictions for every row of `data`, on the CPU.
pub fn predictions(model: &Path, data: &Path) -> Vec<Vec<f32>> {
    let device = burn::tensor::Device::flex();
    let ensemble = spectrain::ensemble::Ensemble::load(model, &device).unwrap();
    let data = spectrain::Dataset::read(data).unwrap();
    ensemble.predict(&data.inputs, 64).members
}

/// A tiny DenseNet, three members, a few epochs: `dir/tiny.toml`.
pub fn tiny_config(dir: &Path) -> PathBuf {
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

/// `a` and `b` hold the same model: the same files with the same [`contents`],
/// and the same predictions of `data`; and the check is not vacuous (its
/// first two members are different networks).
pub fn assert_same_model(a: &Path, b: &Path, data: &Path) {
    let (want, got) = (contents(a), contents(b));
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
    assert_eq!(predictions(a, data), predictions(b, data));
}

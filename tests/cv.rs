//! `spectrain cv`: every row predicted once by a model that never saw it,
//! scores that follow from the out-of-fold predictions, resume and refusal.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use common::{repo, spectrain};

/// The 300 hold-out spectra of `assets/` prepared into `dir/assets.h5`.
fn assets_dataset(dir: &Path) -> PathBuf {
    common::prepared(
        &repo().join("assets/spectra"),
        &repo().join("assets/labels.csv"),
        &dir.join("assets.h5"),
    )
}

/// A tiny network and a short cosine schedule, as a `--config` file.
fn tiny_recipe(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        "[model]\nstem_channels = 8\ngrowth = 4\nbottleneck = 2\nblock_layers = [1, 1]\n\
         integration = 4\nhidden = 16\nhead_dropout = 0.0\n\n[training]\nmembers = 2\n\
         epochs = 2\nbatch = 16\nlr = 1e-3\nlr_schedule = \"cosine\"\nwarmup_epochs = 1\n\
         weight_decay = 0.01\n",
    )
    .unwrap();
    path
}

fn run_cv(data: &Path, out: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    spectrain()
        .args(["--quiet", "cv", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--config")
        .arg(config)
        .args(["--folds", "3", "--baselines", "linear", "--backend", "cpu"])
        .args(extra)
        .output()
        .unwrap()
}

/// `oof.csv` as (header, rows).
fn oof(out: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(out.join("oof.csv")).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn every_row_is_scored_once_by_models_that_never_saw_it() {
    let _one = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = assets_dataset(dir.path());
    let config = tiny_recipe(dir.path());
    let out = dir.path().join("cv");
    let o = run_cv(&data, &out, &config, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dataset = spectrain::Dataset::read(&data).unwrap();
    let (header, rows) = oof(&out);
    // Every dataset row once, each in one of three folds of 99 or 100 rows.
    let ids: Vec<&String> = rows.iter().map(|r| &r[col(&header, "id")]).collect();
    assert_eq!(ids.len(), dataset.len());
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        dataset.ids.iter().collect::<HashSet<_>>().len()
    );
    let mut sizes = BTreeMap::new();
    for r in &rows {
        *sizes.entry(r[col(&header, "fold")].clone()).or_insert(0) += 1;
    }
    assert_eq!(sizes.len(), 3);
    assert!(sizes
        .values()
        .all(|&n| n == dataset.len() / 3 || n == dataset.len() / 3 + 1));

    // A fold's held-out rows are not in its training file, and its ensemble,
    // loaded as any model is, predicts exactly what oof.csv says.
    let device = spectrain::model::BackendChoice::Cpu
        .resolve()
        .unwrap()
        .device;
    for k in 0..3 {
        let fold = out.join(format!("fold-{k:02}"));
        let train = spectrain::Dataset::read(&fold.join("train.h5")).unwrap();
        let held: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| r[col(&header, "fold")] == k.to_string())
            .collect();
        let train_files: HashSet<&String> = train.files.iter().collect();
        assert!(held
            .iter()
            .all(|r| !train_files.contains(&r[col(&header, "file")])));
        assert_eq!(train.len() + held.len(), dataset.len());
        let ensemble = spectrain::ensemble::Ensemble::load(&fold.join("model"), &device).unwrap();
        let inputs: Vec<f32> = held
            .iter()
            .flat_map(|r| {
                let i = dataset
                    .files
                    .iter()
                    .position(|f| *f == r[col(&header, "file")])
                    .unwrap();
                dataset.input(i).to_vec()
            })
            .collect();
        let preds = ensemble.predict(&inputs, 256);
        let cal = ensemble
            .calibration
            .as_ref()
            .expect("a calibrated ensemble");
        for (i, r) in held.iter().enumerate() {
            for (j, label) in ["teff", "logg", "feh"].iter().enumerate() {
                let got: f64 = r[col(&header, &format!("{label}_densenet"))]
                    .parse()
                    .unwrap();
                let sigma: f64 = r[col(&header, &format!("{label}_densenet_std"))]
                    .parse()
                    .unwrap();
                let spread: f64 = r[col(&header, &format!("{label}_densenet_spread"))]
                    .parse()
                    .unwrap();
                assert!((got - preds.mean(i, j)).abs() <= 1e-9 * got.abs().max(1.0));
                assert!((spread - preds.std(i, j)).abs() <= 1e-9 * spread.max(1.0));
                let c = &cal.labels[j];
                let want = ((c.scale * spread).powi(2) + c.floor.powi(2)).sqrt();
                assert!(
                    (sigma - want).abs() <= 1e-9 * want.max(1.0),
                    "{sigma} vs {want}"
                );
            }
        }
    }

    // The report's numbers follow from oof.csv.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cv.json")).unwrap()).unwrap();
    let models: Vec<&str> = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["densenet", "linear"]);
    for (m, model) in models.iter().enumerate() {
        for (j, label) in ["teff", "logg", "feh"].iter().enumerate() {
            let score = &report["models"][m]["labels"][j];
            let (mut abs, mut within1, mut within2) = (0.0, 0usize, 0usize);
            for r in &rows {
                let truth: f64 = r[col(&header, label)].parse().unwrap();
                let p: f64 = r[col(&header, &format!("{label}_{model}"))]
                    .parse()
                    .unwrap();
                abs += (p - truth).abs();
                if *model == "densenet" {
                    let s: f64 = r[col(&header, &format!("{label}_{model}_std"))]
                        .parse()
                        .unwrap();
                    within1 += usize::from((p - truth).abs() <= s);
                    within2 += usize::from((p - truth).abs() <= 2.0 * s);
                }
            }
            let n = rows.len() as f64;
            let mae = score["mae"].as_f64().unwrap();
            assert!((mae - abs / n).abs() <= 1e-9 * mae, "{model} {label}");
            if *model == "densenet" {
                assert_eq!(
                    score["within_1_sigma"].as_f64().unwrap(),
                    within1 as f64 / n
                );
                assert_eq!(
                    score["within_2_sigma"].as_f64().unwrap(),
                    within2 as f64 / n
                );
            } else {
                assert!(score["within_1_sigma"].is_null());
            }
        }
    }
    let md = std::fs::read_to_string(out.join("cv.md")).unwrap();
    assert!(md.contains("against the best baseline (linear)"), "{md}");

    // Again with --resume: nothing retrained, the same report.
    let before = std::fs::read_to_string(out.join("oof.csv")).unwrap();
    let o = run_cv(&data, &out, &config, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("oof.csv")).unwrap(),
        before
    );

    // Without --resume the directory is refused; another recipe may not resume it.
    let o = run_cv(&data, &out, &config, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let o = run_cv(&data, &out, &config, &["--resume", "--epochs", "3"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("other data, folds, recipe"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("oof.csv")).unwrap(),
        before
    );
}

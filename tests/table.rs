//! Catalog-feature tables: prepare-table keeps or rejects every row with a
//! reason, the MLP ensemble learns from real catalogs, and predict --table
//! imputes missing features (saying so) and never returns NaN.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use spectrain::ensemble::{Loss, Task, TrainConfig};

use spectrain::table::{prepare_table, MissingFeatures, PrepareTableOptions};
use spectrain::Dataset;

fn dh_table() -> PathBuf {
    repo().join("assets/tables/dh_postzams.csv")
}

fn prepare(
    table: &Path,
    out: &Path,
    missing: MissingFeatures,
) -> spectrain::table::PrepareTableSummary {
    prepare_table(&PrepareTableOptions {
        table: table.to_path_buf(),
        out: out.to_path_buf(),
        features: vec!["log_teff".into(), "log_l".into()],
        labels: vec!["log_mass".into(), "log_age".into()],
        id: Some("id".into()),
        missing,
        force: false,
    })
    .unwrap()
}

/// Complete real DH rows with cells broken in every way the reader must handle.
fn broken_table(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(dh_table()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (teff, lum, mass) = (col("log_teff"), col("log_l"), col("log_mass"));
    let mut out = vec![header.join(","), "# a comment line is skipped".to_string()];
    let age = col("log_age");
    let complete = lines.filter(|l| {
        let c: Vec<&str> = l.split(',').collect();
        [teff, lum, mass, age].iter().all(|&k| !c[k].is_empty())
    });
    for (i, line) in complete.take(40).enumerate() {
        let mut cells: Vec<String> = line.split(',').map(String::from).collect();
        match i {
            3 => cells[lum] = String::new(),  // missing feature: imputed
            4 => cells[lum] = "NaN".into(),   // missing feature: imputed
            5 => cells[mass] = String::new(), // missing label: rejected
            6 => cells[teff] = "hot".into(),  // not a number: rejected
            7 => cells[teff] = "inf".into(),  // infinite: rejected
            8 => {
                cells[teff] = "NA".into(); // every feature missing: rejected
                cells[lum] = String::new();
            }
            _ => {}
        }
        out.push(cells.join(","));
    }
    let path = dir.join("broken.csv");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

#[test]
fn prepare_table_keeps_or_rejects_every_row_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let table = broken_table(tmp.path());
    let out = tmp.path().join("t.h5");
    let s = prepare(&table, &out, MissingFeatures::Impute);
    assert_eq!(s.rows, 40);
    assert_eq!(s.kept, 36);
    assert_eq!(s.imputed_rows, 2);
    let rejects = std::fs::read_to_string(tmp.path().join("t.rejects.csv")).unwrap();
    let reasons: Vec<(String, String)> = rejects
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("6", "missing-label"),
            ("7", "not-a-number"),
            ("8", "not-a-number"),
            ("9", "no-features")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(rejects.contains("log_teff: 'hot'"), "{rejects}");

    let data = Dataset::read(&out).unwrap();
    assert_eq!(
        data.features.as_deref(),
        Some(&["log_teff".to_string(), "log_l".to_string()][..])
    );
    assert_eq!(data.input_shape, [1, 2]);
    // Missing features are stored as NaN (imputed later, with training statistics).
    assert!(data.input(3)[1].is_nan() && data.input(4)[1].is_nan());
    assert!(data.input(3)[0].is_finite());
    // Every other value is the CSV's, unchanged.
    let first: Vec<String> = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    assert_eq!(data.ids[0], first[0]);
    assert_eq!(data.label_row(0)[0], first[9].parse::<f32>().unwrap());

    // --missing reject moves the two rows with a missing feature to the reject list.
    let s = prepare(&table, &tmp.path().join("r.h5"), MissingFeatures::Reject);
    assert_eq!((s.kept, s.rejected["missing-feature"]), (34, 2));
}

fn train_mlp(data: &Path, out: &Path, epochs: usize, loss: Loss) -> spectrain::train::TrainReport {
    let training = TrainConfig {
        members: 3,
        epochs,
        batch: 64,
        lr: 3e-3,
        loss,
        ..Default::default()
    };
    train(&spectrain::train::TrainOptions {
        columns: Some(vec!["log_mass".into()]),
        ..train_options(data, out, tiny_mlp(), training)
    })
    .unwrap()
}

#[test]
fn mlp_ensemble_learns_mass_from_teff_and_luminosity() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dh.h5");
    prepare(&dh_table(), &data, MissingFeatures::Impute);
    for loss in [Loss::Mae, Loss::Smape] {
        let out = tmp.path().join(format!("mlp-{loss:?}"));
        let report = train_mlp(&data, &out, 40, loss);
        let mae = report.ensemble.labels[0].1.regression().unwrap().mae;
        // The baseline: predicting the mean log mass for every validation star.
        let ds = Dataset::read(&data).unwrap();
        let y: Vec<f64> = (0..ds.len()).map(|i| ds.label_row(i)[0] as f64).collect();
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let naive = y.iter().map(|v| (v - mean).abs()).sum::<f64>() / y.len() as f64;
        assert!(
            mae < 0.4 * naive,
            "{loss:?}: MAE {mae} vs predicting the mean {naive}"
        );
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("spec.json")).unwrap()).unwrap();
        assert_eq!(
            spec["features"]["names"],
            serde_json::json!(["log_teff", "log_l"])
        );
        assert!(spec["model"]["mlp"].is_object(), "{}", spec["model"]);
    }
}

#[test]
fn predict_table_imputes_flags_rejects_and_never_returns_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dh.h5");
    prepare(&dh_table(), &data, MissingFeatures::Impute);
    let model = tmp.path().join("mlp");
    train_mlp(&data, &model, 3, Loss::Mae);
    let table = broken_table(tmp.path());
    let out = tmp.path().join("pred.csv");
    let status = spectrain()
        .args(["-q", "predict", "--backend", "cpu", "--id", "id"])
        .arg("--model")
        .arg(&model)
        .arg("--table")
        .arg(&table)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut r = csv::Reader::from_path(&out).unwrap();
    let header = r.headers().unwrap().clone();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    // One output row per input row, in order; the missing label does not matter here.
    assert_eq!(rows.len(), 40);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[col("row")], (i + 1).to_string());
        let rejected = [6, 7, 8].contains(&i);
        assert_eq!(
            &row[col("status")],
            if rejected { "rejected" } else { "ok" },
            "row {i}"
        );
        if !rejected {
            for c in ["log_mass", "log_mass_std"] {
                let v: f64 = row[col(c)].parse().unwrap();
                assert!(v.is_finite(), "row {i} {c} = {v}");
            }
        }
    }
    assert_eq!(&rows[3][col("imputed")], "log_l");
    assert_eq!(&rows[3][col("flag_domain")], "1");
    assert_eq!(&rows[0][col("imputed")], "");
    assert!(rows[8][col("reason")].starts_with("no-features"));

    // A model feature absent from the table is an error that names it.
    let no_lum = tmp.path().join("no-lum.csv");
    std::fs::write(&no_lum, "id,log_teff\na,3.9\n").unwrap();
    let o = spectrain()
        .args(["-q", "predict", "--backend", "cpu"])
        .arg("--model")
        .arg(&model)
        .arg("--table")
        .arg(&no_lum)
        .arg("--out")
        .arg(tmp.path().join("x.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no column 'log_l'"), "{err}");
    assert!(!tmp.path().join("x.csv").exists());

    // A table model given spectra says so instead of failing on shapes.
    let o = spectrain()
        .args(["-q", "predict", "--backend", "cpu"])
        .arg("--model")
        .arg(&model)
        .arg("--spectra")
        .arg(repo().join("tests/data/dr10"))
        .arg("--out")
        .arg(tmp.path().join("y.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("use predict --table"), "{err}");
}

#[test]
fn the_shipped_mlp_config_trains_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dh.h5");
    prepare(&dh_table(), &data, MissingFeatures::Impute);
    let out = tmp.path().join("m");
    let o = spectrain()
        .args([
            "-q",
            "train",
            "--arch",
            "mlp",
            "--backend",
            "cpu",
            "--epochs",
            "2",
        ])
        .args(["--members", "2", "--columns", "log_mass"])
        .arg("--config")
        .arg(repo().join("models/mlp.toml"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("spec.json")).unwrap()).unwrap();
    assert_eq!(
        spec["model"]["mlp"]["hidden"],
        serde_json::json!([128, 128, 64])
    );
    assert_eq!(spec["training"]["loss"], "mae");
    assert_eq!(spec["training"]["members"], 2);
}

/// `train` without `--config` takes the library's defaults for the task and
/// network (`spectrain::train::default_training`): MAE for the MLP, 5e-4 for
/// classification, and a flag over either.
#[test]
fn train_defaults_follow_the_task_and_network() {
    let tmp = tempfile::tempdir().unwrap();
    // The real DH table with a class label: hotter than 6500 K or not.
    let text = std::fs::read_to_string(dh_table()).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let mut csv = format!("{},hot\n", lines.next().unwrap());
    for line in lines {
        let teff: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        csv.push_str(&format!("{line},{}\n", u8::from(teff > 6500.0)));
    }
    let table = tmp.path().join("dh_hot.csv");
    std::fs::write(&table, csv).unwrap();
    let data = tmp.path().join("dh.h5");
    prepare_table(&PrepareTableOptions {
        table,
        out: data.clone(),
        features: vec!["log_teff".into(), "log_l".into()],
        labels: vec!["log_mass".into(), "hot".into()],
        id: Some("id".into()),
        missing: MissingFeatures::Impute,
        force: false,
    })
    .unwrap();
    let training = |name: &str, extra: &[&str]| -> serde_json::Value {
        let out = tmp.path().join(name);
        let o = spectrain()
            .args(["-q", "train", "--arch", "mlp", "--hidden", "8"])
            .args(["--backend", "cpu", "--members", "1", "--epochs", "1"])
            .args(extra)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("spec.json")).unwrap()).unwrap();
        spec["training"].clone()
    };
    let library = |task| spectrain::train::default_training(task, spectrain::model::Arch::Mlp);
    let regress = training("regress", &["--columns", "log_mass"]);
    assert_eq!(regress["task"], "regress");
    assert_eq!(regress["loss"], "mae");
    assert_eq!(regress["lr"], library(Task::Regress).lr);
    let classify = training("classify", &["--columns", "hot", "--task", "classify"]);
    assert_eq!(classify["task"], "classify");
    assert_eq!(classify["lr"], 5e-4);
    assert_eq!(classify["lr"], library(Task::Classify).lr);
    let given = training(
        "given",
        &["--columns", "hot", "--task", "classify", "--lr", "1e-3"],
    );
    assert_eq!(given["lr"], 1e-3);
    let huber = training("huber", &["--columns", "log_mass", "--loss", "huber"]);
    assert_eq!(huber["loss"], "huber");
}

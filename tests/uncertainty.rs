//! Calibrated uncertainties: training fits `calibration.json` on the
//! validation split, the catalog reports the calibrated sigma as `_std` beside
//! the raw member spread `_spread`, and `evaluate` reports their coverage.

mod common;

use common::*;

#[test]
fn the_catalog_reports_calibrated_sigma_and_the_raw_member_spread() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, model) = tiny_model(tmp.path());
    let cal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("calibration.json")).unwrap())
            .unwrap();
    let out = tmp.path().join("catalog.csv");
    let status = spectrain()
        .args([
            "-q",
            "predict",
            "--backend",
            "cpu",
            "--members-out",
            "--model",
        ])
        .arg(&model)
        .arg("--spectra")
        .arg(repo().join("tests/data/dr10"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut checked = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        if &rec[at("status")] != "ok" {
            continue;
        }
        for (j, label) in ["teff", "logg", "feh"].iter().enumerate() {
            let get = |c: &str| rec[at(c)].parse::<f64>().unwrap();
            // The spread, recomputed from the members' own columns (divisor M).
            let (m0, m1) = (get(&format!("{label}_m00")), get(&format!("{label}_m01")));
            let mean = 0.5 * (m0 + m1);
            let spread = (0.5 * ((m0 - mean).powi(2) + (m1 - mean).powi(2))).sqrt();
            assert!((get(label) - mean).abs() <= 1e-6 * mean.abs().max(1.0));
            assert!((get(&format!("{label}_spread")) - spread).abs() <= 1e-6 * spread.max(1e-3));
            let c = &cal["labels"][j];
            assert_eq!(c["label"], *label);
            let (a, b) = (c["scale"].as_f64().unwrap(), c["floor"].as_f64().unwrap());
            let sigma = ((a * spread).powi(2) + b * b).sqrt();
            let got = get(&format!("{label}_std"));
            assert!(
                (got - sigma).abs() <= 1e-5 * sigma.max(1e-3),
                "{label}: {got} vs {sigma}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "{checked}");

    // evaluate: coverage of the calibrated sigma and of the spread, and a plot per label.
    let report_dir = tmp.path().join("eval");
    let status = spectrain()
        .args(["-q", "evaluate", "--backend", "cpu", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&report_dir)
        .status()
        .unwrap();
    assert!(status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    let coverage = report["coverage"].as_array().unwrap();
    assert_eq!(coverage.len(), 3);
    for c in coverage {
        assert_eq!(c["calibrated"], true);
        let (s1, s2) = (
            c["sigma_1"].as_f64().unwrap(),
            c["sigma_2"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&s1) && s1 <= s2 && s2 <= 1.0);
        let name = c["label"].as_str().unwrap();
        assert!(report_dir.join(format!("calibration_{name}.png")).exists());
    }
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(md.contains("within 1 sigma"), "{md}");
}

/// Each shipped model, evaluated again on the `assets/` stars it never saw,
/// reproduces the MAE and the 1- and 2-sigma coverage its
/// `holdout/report.json` (and models/README.md) quotes: the shipped weights,
/// calibration and inference path still give the published numbers.
#[test]
fn shipped_models_reproduce_their_hold_out_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let read = |p: &std::path::Path| -> serde_json::Value {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap()
    };
    for (model, labels) in [
        ("models/dr10-teff-logg-feh", "assets/labels.csv"),
        ("models/dr10-mass-age", "assets/labels-mist.csv"),
    ] {
        let model = repo().join(model);
        let name = file_name(&model);
        let shipped = read(&model.join("holdout/report.json"));
        let columns: Vec<&str> = shipped["label_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let data = prepared_columns(
            &repo().join("assets/spectra"),
            &repo().join(labels),
            &columns,
            &tmp.path().join(format!("{name}.h5")),
        );
        let out = tmp.path().join(format!("{name}-report"));
        let o = spectrain()
            .args(["-q", "evaluate", "--backend", "cpu", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = read(&out.join("report.json"));
        assert_eq!(got["spectra"], shipped["spectra"], "{name}: spectra");
        for (i, label) in columns.iter().enumerate() {
            let mae =
                |r: &serde_json::Value| r["ensemble"]["labels"][i][1]["mae"].as_f64().unwrap();
            let want = mae(&shipped);
            assert_close(
                &format!("{name} {label} MAE"),
                &[mae(&got)],
                &[want],
                1e-4 * want,
            );
            for key in ["sigma_1", "sigma_2"] {
                let cov = |r: &serde_json::Value| r["coverage"][i][key].as_f64().unwrap();
                // One star of ~300 either side moves coverage by 0.0034.
                assert_close(
                    &format!("{name} {label} {key}"),
                    &[cov(&got)],
                    &[cov(&shipped)],
                    0.004,
                );
            }
        }
    }
}

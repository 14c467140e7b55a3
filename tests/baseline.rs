//! Baselines from maintained crates: ridge matches scikit-learn, every method
//! learns a real catalog relation, is reproducible by seed, and writes the
//! same report as `evaluate`.

mod common;

use common::*;
use spectrain::baseline::{baseline, BaselineOptions, Method, Ridge};
use spectrain::table::{prepare_table, MissingFeatures, PrepareTableOptions};

fn matrix(v: &serde_json::Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().unwrap();
    let f = rows[0].as_array().unwrap().len();
    let x = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (x, rows.len(), f)
}

#[test]
fn ridge_matches_scikit_learn_with_more_and_fewer_rows_than_inputs() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/ridge_golden.json")).unwrap(),
    )
    .unwrap();
    for case in ["primal", "dual"] {
        let g = &golden[case];
        let (x, n, f) = matrix(&g["x_train"]);
        let y: Vec<f32> = g["y_train"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(n > f, case == "primal");
        let model = Ridge::fit(&x, n, f, &y, g["alpha"].as_f64().unwrap()).unwrap();
        let (xt, _, _) = matrix(&g["x_test"]);
        let p = model.predict(&xt);
        for (i, (p, e)) in p.iter().zip(g["predicted"].as_array().unwrap()).enumerate() {
            let e = e.as_f64().unwrap();
            assert!(
                (*p as f64 - e).abs() < 2e-4,
                "{case} row {i}: {p} vs sklearn {e}"
            );
        }
    }
}

#[test]
fn every_method_learns_mass_reproducibly_and_reports_like_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dh.h5");
    prepare_table(&PrepareTableOptions {
        table: repo().join("assets/tables/dh_postzams.csv"),
        out: data.clone(),
        features: vec!["log_teff".into(), "log_l".into()],
        labels: vec!["log_mass".into()],
        id: Some("id".into()),
        missing: MissingFeatures::Impute,
        force: false,
    })
    .unwrap();
    let ds = spectrain::Dataset::read(&data).unwrap();
    let y: Vec<f64> = (0..ds.len()).map(|i| ds.label_row(i)[0] as f64).collect();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let naive = y.iter().map(|v| (v - mean).abs()).sum::<f64>() / y.len() as f64;
    for method in [Method::Rf, Method::Gbdt, Method::Linear] {
        let opts = BaselineOptions {
            data: data.clone(),
            test: None,
            out: tmp.path().join(method.name()),
            method,
            columns: None,
            val_fraction: 0.2,
            seed: 7,
            trees: 40,
            rounds: 100,
        };
        let (report, info) = baseline(&opts).unwrap();
        let mae = report.ensemble.labels[0].1.regression().unwrap().mae;
        assert!(
            mae < 0.5 * naive,
            "{method:?}: MAE {mae} vs predicting the mean {naive}"
        );
        assert_eq!(info.scored_rows, report.spectra);
        assert_eq!(info.train_rows + info.scored_rows, ds.len());
        for f in ["report.json", "report.md", "baseline.json"] {
            assert!(opts.out.join(f).exists(), "{method:?} {f}");
        }
        let again = baseline(&BaselineOptions {
            out: tmp.path().join(format!("{}-again", method.name())),
            ..opts
        })
        .unwrap()
        .0;
        assert_eq!(
            serde_json::to_string(&again.ensemble).unwrap(),
            serde_json::to_string(&report.ensemble).unwrap(),
            "{method:?} is not reproducible by seed"
        );
    }
}

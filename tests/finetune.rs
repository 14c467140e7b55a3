//! Transfer learning: every member starts from its parent, trains briefly on a
//! small new set (plus anchors outside its label range), and the result is an
//! ordinary model directory that names its parent and is reproducible by seed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use spectrain::ensemble::{Loss, TrainConfig};
use spectrain::model::BackendChoice;
use spectrain::table::{prepare_table, MissingFeatures, PrepareTableOptions};
use spectrain::train::finetune::{finetune, FinetuneOptions, FinetuneReport};

fn prepare(table: &Path, out: &Path) {
    prepare_table(&PrepareTableOptions {
        table: table.to_path_buf(),
        out: out.to_path_buf(),
        features: vec!["log_teff".into(), "log_l".into()],
        labels: vec!["log_mass".into()],
        id: Some("id".into()),
        missing: MissingFeatures::Reject,
        force: false,
    })
    .unwrap();
}

/// 150 real DH stars relabelled on another mass scale, one that also depends
/// on temperature (as a better-calibrated catalog would): the parent cannot
/// know it, a fine-tuned model can learn it from a few stars.
fn relabelled(dir: &Path) -> PathBuf {
    let mut r = csv::Reader::from_path(repo().join("assets/tables/dh_postzams.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (id, teff, lum, mass) = (col("id"), col("log_teff"), col("log_l"), col("log_mass"));
    let mut w = String::from("id,log_teff,log_l,log_mass\n");
    let rows = r
        .records()
        .map(Result::unwrap)
        .filter(|rec| [teff, lum, mass].iter().all(|&k| !rec[k].is_empty()));
    for rec in rows.skip(7).step_by(11).take(150) {
        let t: f64 = rec[teff].parse().unwrap();
        let m: f64 = rec[mass].parse().unwrap();
        let new = m + 0.15 + 2.0 * (t - 3.85).abs();
        w.push_str(&format!(
            "{},{},{},{new}\n",
            &rec[id], &rec[teff], &rec[lum]
        ));
    }
    let path = dir.join("relabelled.csv");
    std::fs::write(&path, w).unwrap();
    path
}

fn parent(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("dh.h5");
    prepare(&repo().join("assets/tables/dh_postzams.csv"), &data);
    let model = dir.join("parent");
    let training = TrainConfig {
        members: 3,
        epochs: 30,
        batch: 64,
        lr: 3e-3,
        loss: Loss::Mae,
        ..Default::default()
    };
    train(&train_options(&data, &model, tiny_mlp(), training)).unwrap();
    (data, model)
}

fn run(opts: &FinetuneOptions) -> FinetuneReport {
    let _one = one_at_a_time();
    finetune(opts).unwrap()
}

#[test]
fn finetuning_learns_the_new_scale_reproducibly_and_names_its_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, model) = parent(tmp.path());
    let new = tmp.path().join("new.h5");
    prepare(&relabelled(tmp.path()), &new);
    let opts = FinetuneOptions {
        model: model.clone(),
        data: new.clone(),
        out: tmp.path().join("ft"),
        steps: 100,
        lr: Some(3e-3),
        batch: Some(32),
        val_fraction: 0.3,
        seed: 5,
        anchor: Some(base.clone()),
        anchor_count: 10,
        freeze_features: false,
        backend: BackendChoice::Cpu,
        resume: false,
        force: false,
        progress: false,
    };
    let r = run(&opts);
    let held = &r.held_out.labels[0];
    assert_eq!(r.held_out.rows, 45);
    assert!(
        held.finetuned.mae < 0.5 * held.parent.mae,
        "MAE {} -> {}",
        held.parent.mae,
        held.finetuned.mae
    );
    assert!(held.finetuned.pearson_r > held.parent.pearson_r);
    assert!(held.finetuned.in_tension < held.parent.in_tension);
    // Anchors come from the parent's training rows outside the new label range.
    assert_eq!(r.anchors_per_member, 10);
    assert!(r.anchor_pool > 10);
    assert!(r.parent_validation.is_some());

    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opts.out.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(prov["command"], "finetune");
    assert_eq!(prov["parent"]["model"], model.display().to_string());
    assert_eq!(prov["completed"], true);
    assert!(opts.out.join("finetune.md").exists());

    // The same seed gives the same model.
    let again = run(&FinetuneOptions {
        out: tmp.path().join("ft-again"),
        ..opts.clone()
    });
    assert_eq!(
        serde_json::to_string(&again.held_out).unwrap(),
        serde_json::to_string(&r.held_out).unwrap()
    );
    // The result is an ordinary model directory: predict --table runs on it.
    let out = tmp.path().join("pred.csv");
    let status = spectrain()
        .args(["-q", "predict", "--backend", "cpu"])
        .arg("--model")
        .arg(&opts.out)
        .arg("--table")
        .arg(relabelled(tmp.path()))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn densenet_finetune_with_frozen_features_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, model) = tiny_model(tmp.path());
    let out = tmp.path().join("ft");
    let status = spectrain()
        .args([
            "-q",
            "finetune",
            "--backend",
            "cpu",
            "--steps",
            "3",
            "--freeze",
            "features",
        ])
        .args(["--val-fraction", "0.25"])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for f in [
        "member-00.bpk",
        "member-01.bpk",
        "spec.json",
        "finetune.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let prov = std::fs::read_to_string(out.join("provenance.json")).unwrap();
    assert!(prov.contains("\"freeze_features\": true"), "{prov}");
    // Three steps of batch min(64, half the training part) = 3 steps recorded.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("finetune.json")).unwrap()).unwrap();
    assert_eq!(report["steps"], 3);
}

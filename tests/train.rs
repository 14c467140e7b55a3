//! Training on real spectra with a tiny network: it can overfit, it is
//! deterministic for a seed, and a run killed with SIGKILL resumes to the same result.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use spectrain::ensemble::{Task, TrainConfig};
use spectrain::model::{BackendChoice, ModelConfig};
use spectrain::Dataset;

fn options(
    data: &Path,
    out: &Path,
    backend: BackendChoice,
    training: TrainConfig,
) -> spectrain::train::TrainOptions {
    spectrain::train::TrainOptions {
        backend,
        ..train_options(data, out, ModelConfig::Densenet(tiny_network()), training)
    }
}

fn final_train_loss(out: &Path, member: usize) -> f64 {
    let mut r = csv::Reader::from_path(out.join(format!("member-{member:02}.csv"))).unwrap();
    let last = r.records().last().unwrap().unwrap();
    last[1].parse().unwrap()
}

/// The same body runs on every backend compiled in.
fn overfits_real_spectra(backend: BackendChoice) {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let out = tmp.path().join("model");
    let training = TrainConfig {
        members: 1,
        epochs: 150,
        batch: 16,
        lr: 1e-2,
        ..Default::default()
    };
    let report = train(&options(&data, &out, backend, training)).unwrap();
    assert_eq!(report.members.len(), 1);
    let loss = final_train_loss(&out, 0);
    // Huber on standardised targets starts near 0.5; memorising 8 spectra drives it to ~0.
    assert!(loss < 0.02, "final training loss {loss}");
    for f in [
        "spec.json",
        "member-00.bpk",
        "member-00.csv",
        "metrics.json",
        "provenance.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    assert!(
        !out.join("member-00.work").exists(),
        "work files cleaned up"
    );
}

macro_rules! on_every_backend {
    ($($name:ident: $backend:expr, $feature:literal;)*) => {$(
        #[test]
        #[cfg_attr(not(feature = $feature), ignore = "backend not compiled in")]
        fn $name() {
            overfits_real_spectra($backend);
        }
    )*};
}

// The CPU backend is always compiled; the `cpu` feature name below is never set,
// so that test always runs.
#[test]
fn overfits_real_spectra_on_cpu() {
    overfits_real_spectra(BackendChoice::Cpu);
}

on_every_backend! {
    overfits_real_spectra_on_ndarray: BackendChoice::Ndarray, "ndarray";
    overfits_real_spectra_on_wgpu: BackendChoice::Wgpu, "wgpu";
}

#[test]
fn same_seed_same_model_and_existing_dirs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let training = TrainConfig {
        members: 2,
        epochs: 3,
        batch: 4,
        ..Default::default()
    };
    let run = |name: &str| {
        let out = tmp.path().join(name);
        train(&options(&data, &out, BackendChoice::Cpu, training.clone())).unwrap();
        out
    };
    let (a, b) = (run("a"), run("b"));
    let (pa, pb) = (predictions(&a, &data), predictions(&b, &data));
    assert!(pa == pb, "same seed, different predictions");
    // Bootstrap members differ from each other.
    assert!(pa[0] != pa[1], "members are identical");
    let err = train(&options(&data, &a, BackendChoice::Cpu, training.clone())).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // A run killed after publishing a member but before removing its
    // checkpoint: --resume keeps the member and removes the checkpoint.
    std::fs::create_dir(a.join("member-00.work")).unwrap();
    let resumed = spectrain::train::TrainOptions {
        resume: true,
        ..options(&data, &a, BackendChoice::Cpu, training)
    };
    train(&resumed).unwrap();
    assert!(!a.join("member-00.work").exists());
    assert!(predictions(&a, &data) == pa);
}

#[test]
fn classification_learns_hot_versus_cool_stars() {
    // A two-class label from real spectra: Teff above or below the median.
    let tmp = tempfile::tempdir().unwrap();
    let real = Dataset::read(&real_dataset(tmp.path())).unwrap();
    let mut teffs: Vec<f32> = (0..real.len()).map(|i| real.label_row(i)[0]).collect();
    teffs.sort_by(f32::total_cmp);
    let median = teffs[teffs.len() / 2];
    let mut data = Dataset::new(vec!["hot".into()], real.preprocess.clone());
    for i in 0..real.len() {
        data.push(spectrain::dataset::Sample {
            id: real.ids[i].clone(),
            file: real.files[i].clone(),
            input: real.input(i).to_vec(),
            labels: vec![if real.label_row(i)[0] >= median {
                1.0
            } else {
                0.0
            }],
            snrg: real.snrg[i],
            ra: real.ra[i],
            dec: real.dec[i],
            z: real.z[i],
        });
    }
    let path = tmp.path().join("classes.h5");
    data.write(&path).unwrap();
    let out = tmp.path().join("classifier");
    let training = TrainConfig {
        task: Task::Classify,
        members: 1,
        epochs: 100,
        batch: 16,
        lr: 1e-2,
        ..Default::default()
    };
    train(&options(&path, &out, BackendChoice::Cpu, training)).unwrap();
    let loss = final_train_loss(&out, 0);
    assert!(loss < 0.05, "cross-entropy after overfitting: {loss}");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("spec.json")).unwrap()).unwrap();
    assert_eq!(spec["model"]["densenet"]["outputs"], 2);
    assert_eq!(spec["standardiser"], serde_json::Value::Null);
}

/// Each member's predictions (label units) for every spectrum of `data`.
fn predictions(model: &Path, data: &Path) -> Vec<Vec<f32>> {
    let device = burn::tensor::Device::flex();
    let ensemble = spectrain::ensemble::Ensemble::load(model, &device).unwrap();
    let data = Dataset::read(data).unwrap();
    ensemble.predict(&data.inputs, 64).members
}

/// Everything a run's result consists of, minus wall-clock times: curves,
/// ensemble metrics, and what the saved weights predict.
fn outcome(dir: &Path, members: usize, data: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for p in predictions(dir, data) {
        files.push(p.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    for m in 0..members {
        let curves = std::fs::read_to_string(dir.join(format!("member-{m:02}.csv"))).unwrap();
        let without_seconds: String = curves
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
            .collect();
        files.push(without_seconds.into_bytes());
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    files.push(metrics["ensemble"].to_string().into_bytes());
    files
}

#[test]
fn noise_augmentation_changes_training_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let training = |noise: f64| TrainConfig {
        members: 1,
        epochs: 2,
        batch: 4,
        augment_noise: noise,
        ..Default::default()
    };
    let run = |name: &str, noise: f64| {
        let out = tmp.path().join(name);
        train(&options(&data, &out, BackendChoice::Cpu, training(noise))).unwrap();
        predictions(&out, &data)
    };
    let (plain, noisy, again) = (run("plain", 0.0), run("noisy", 2.0), run("again", 2.0));
    assert!(plain != noisy, "the noise changed nothing");
    assert!(noisy == again, "same seed and noise, different models");
    // Recorded in the spec only when on, so older specs keep their bytes.
    let spec = |n: &str| std::fs::read_to_string(tmp.path().join(n).join("spec.json")).unwrap();
    assert!(spec("noisy").contains("\"augment_noise\": 2.0"));
    assert!(!spec("plain").contains("augment_noise"));
}

#[test]
fn sigkill_then_resume_gives_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tmp.path().join("tiny.toml");
    let t = tiny_network();
    std::fs::write(
        &config,
        format!(
            "[model]\nstem_channels = {}\ngrowth = {}\nbottleneck = {}\nblock_layers = [1, 1]\nintegration = {}\nhidden = {}\nhead_dropout = 0.2\n",
            t.stem_channels, t.growth, t.bottleneck, t.integration, t.hidden
        ),
    )
    .unwrap();
    let args = |out: &Path| {
        let mut c = spectrain();
        c.args([
            "-q",
            "train",
            "--backend",
            "cpu",
            "--members",
            "2",
            "--epochs",
            "30",
            "--batch",
            "4",
            // The noise stream must resume exactly too.
            "--augment-noise",
            "1",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(out);
        c
    };
    let straight = tmp.path().join("straight");
    assert!(args(&straight).status().unwrap().success());

    // Kill -9 once the first epoch checkpoint of member 0 exists, mid-run.
    let killed = tmp.path().join("killed");
    let mut child = args(&killed).spawn().unwrap();
    let state = killed.join("member-00.work/state.json");
    let t0 = Instant::now();
    while !state.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("metrics.json").exists(),
        "the kill landed before the end"
    );

    let status = args(&killed).arg("--resume").status().unwrap();
    assert!(status.success());
    let (a, b) = (outcome(&straight, 2, &data), outcome(&killed, 2, &data));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x == y,
            "part {i} of the result differs after resume:\n{}\n---\n{}",
            String::from_utf8_lossy(x),
            String::from_utf8_lossy(y)
        );
    }
}

#[test]
fn evaluate_scores_the_ensemble_mean_and_refuses_other_recipes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let model = tmp.path().join("model");
    let training = TrainConfig {
        members: 2,
        epochs: 2,
        batch: 4,
        ..Default::default()
    };
    train(&options(&data, &model, BackendChoice::Cpu, training)).unwrap();
    let opts = spectrain::evaluate::EvaluateOptions {
        model: model.clone(),
        data: data.clone(),
        out: tmp.path().join("report"),
        backend: BackendChoice::Cpu,
        batch: 3,
    };
    let report = spectrain::evaluate::evaluate_model(&opts).unwrap();
    assert!(opts.out.join("report.json").exists() && opts.out.join("report.md").exists());
    // Recompute the ensemble Teff MAE from the members' predictions.
    let members = predictions(&model, &data);
    let ds = Dataset::read(&data).unwrap();
    let mae = (0..ds.len())
        .map(|i| {
            let mean = members.iter().map(|m| m[i * 3] as f64).sum::<f64>() / members.len() as f64;
            (mean - ds.label_row(i)[0] as f64).abs()
        })
        .sum::<f64>()
        / ds.len() as f64;
    let reported = report.ensemble.labels[0].1.regression().unwrap().mae;
    assert!((mae - reported).abs() < 1e-3 * mae, "{mae} vs {reported}");
    assert_eq!(report.members.len(), 2);

    // A dataset made with another recipe is refused, not silently mis-predicted.
    let mut other = Dataset::read(&data).unwrap();
    other.preprocess.rest_frame = false;
    let other_path = tmp.path().join("other.h5");
    other.write(&other_path).unwrap();
    let err = spectrain::evaluate::evaluate_model(&spectrain::evaluate::EvaluateOptions {
        data: other_path,
        ..opts
    })
    .unwrap_err();
    assert!(err.to_string().contains("different recipe"), "{err}");
}

/// Label selection (`spectrain::dataset::select_targets`) on the real dr10
/// dataset: columns in the order asked, and each refusal says why.
#[test]
fn targets_are_selected_by_name_and_refused_with_the_reason() {
    use spectrain::dataset::{select_targets, TargetsError};
    let tmp = tempfile::tempdir().unwrap();
    let data = Dataset::read(&real_dataset(tmp.path())).unwrap();
    let cols = ["feh".to_string(), "teff".to_string()];
    let t = select_targets(&data, Some(&cols), Task::Regress).unwrap();
    assert_eq!((t.names.as_slice(), t.classes), (&cols[..], 0));
    assert_eq!(t.values.len(), 2 * data.len());
    for i in 0..data.len() {
        assert_eq!(t.values[2 * i], data.label_row(i)[2]);
        assert_eq!(t.values[2 * i + 1], data.label_row(i)[0]);
    }
    let err = |columns: &[&str], task| {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        match select_targets(&data, Some(&columns), task) {
            Err(e) => e,
            Ok(_) => panic!("{columns:?} accepted"),
        }
    };
    let e = err(&["mass"], Task::Regress);
    assert!(matches!(e, TargetsError::NoSuchLabel { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the dataset has no label 'mass' (it has: teff,logg,feh)"
    );
    assert!(matches!(
        err(&[], Task::Regress),
        TargetsError::NoneSelected
    ));
    let e = err(&["teff", "logg"], Task::Classify);
    assert!(matches!(e, TargetsError::ClassifyNeedsOneColumn), "{e}");
    // Real Teff values are not class numbers.
    let e = err(&["teff"], Task::Classify);
    assert!(matches!(e, TargetsError::NotAClass(v) if v > 3000.0), "{e}");
    // The command line says the same, as a one-line error.
    let o = spectrain()
        .args(["-q", "train", "--backend", "cpu", "--columns", "mass"])
        .arg("--data")
        .arg(tmp.path().join("data.h5"))
        .arg("--out")
        .arg(tmp.path().join("m"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("the dataset has no label 'mass' (it has: teff,logg,feh)"),
        "{stderr}"
    );
}

/// The shipped model's `member-NN.json` (written before the metrics were
/// typed) load as typed reports and serialise back to the same bytes.
#[test]
fn shipped_member_reports_load_and_keep_their_bytes() {
    let dir = common::repo().join("models/dr10-teff-logg-feh");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = common::file_name(&path);
        if !(name.starts_with("member-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let report: spectrain::train::MemberReport =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(report.evaluation.labels.len(), 3, "{name}");
        assert!(report.evaluation.labels[0].1.regression().unwrap().mae > 0.0);
        let again = serde_json::to_string_pretty(&report).unwrap();
        assert_eq!(again.trim_end(), text.trim_end(), "{name}");
        seen += 1;
    }
    assert!(seen > 0, "no member reports in {}", dir.display());
}

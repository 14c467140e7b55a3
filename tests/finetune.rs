//! Transfer learning: every member starts from its parent, trains briefly on a
//! small new set (plus anchors from the parent's data away from the new set in
//! input space), and the result is an ordinary model directory that names its
//! parent and is reproducible by seed. Frozen parts stay bit-equal to the parent.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use spectrain::ensemble::{Loss, TrainConfig};
use spectrain::model::BackendChoice;
use spectrain::table::{prepare_table, MissingFeatures, PrepareTableOptions};
use spectrain::train::finetune::{
    finetune, AnchorFrom, AnchorPool, FinetuneOptions, FinetuneReport, Freeze,
};

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
        anchor_from: AnchorFrom::Outside,
        freeze: Freeze::Norm,
        l2sp: 0.0,
        gate: true,
        gate_width: FinetuneOptions::DEFAULT_GATE_WIDTH,
        check: vec![],
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
    // Anchors come from the parent's training rows away from the new set.
    assert_eq!(r.anchors_per_member, 10);
    assert!(r.anchor_pool > 10);
    assert!(r.anchor_radius.unwrap() > 0.0);
    let (all, outside) = (
        r.parent_validation.as_ref().unwrap().rows,
        r.parent_validation_outside.as_ref().unwrap().rows,
    );
    assert!(0 < outside && outside < all, "{outside} of {all}");
    assert!(opts.out.join("domains.png").exists());

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
    assert!(prov.contains("\"freeze\": \"features\""), "{prov}");
    // What the command line left unsaid is the library's default.
    let prov: serde_json::Value = serde_json::from_str(&prov).unwrap();
    assert_eq!(prov["parent"]["l2sp"], FinetuneOptions::DEFAULT_L2SP);
    assert_kept(&model, &out, |p| {
        !(p.contains("hidden") || p.contains("output"))
    });
    // Three steps of batch min(64, half the training part) = 3 steps recorded.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("finetune.json")).unwrap()).unwrap();
    assert_eq!(report["steps"], 3);
}

/// Every float tensor of a network (parameters and batch-norm statistics),
/// named by its module path.
fn tensors(net: &spectrain::model::Network) -> Vec<(String, Vec<f32>)> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param.val().into_data().try_to_vec::<f32>().unwrap();
            self.out.push((self.path.join("."), v));
        }
    }
    let mut c = Collect::default();
    net.visit(&mut c);
    c.out
}

/// Asserts, for every member, that the tensors of `child` whose path
/// satisfies `kept` are bit-equal to the `parent`'s (the records loaded
/// from both model directories) and that every other tensor changed.
fn assert_kept(parent: &Path, child: &Path, kept: impl Fn(&str) -> bool) {
    let device = BackendChoice::Cpu.resolve().unwrap().device;
    let p = spectrain::ensemble::Ensemble::load(parent, &device).unwrap();
    let c = spectrain::ensemble::Ensemble::load(child, &device).unwrap();
    assert_eq!(p.members.len(), c.members.len());
    for (m, (pm, cm)) in p.members.iter().zip(&c.members).enumerate() {
        let (pt, ct) = (tensors(pm), tensors(cm));
        assert_eq!(pt.len(), ct.len());
        let mut same = 0;
        for ((path, a), (path2, b)) in pt.iter().zip(&ct) {
            assert_eq!(path, path2);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if kept(path) {
                assert_eq!(bits(a), bits(b), "member {m}: {path} changed");
                same += 1;
            } else {
                assert_ne!(bits(a), bits(b), "member {m}: {path} did not train");
            }
        }
        assert!(same > 0, "nothing was meant to stay");
    }
}

#[test]
fn frozen_parts_stay_bit_equal_to_the_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, model) = parent(tmp.path());
    let new = tmp.path().join("new.h5");
    prepare(&relabelled(tmp.path()), &new);
    let opts = |freeze, out: &str| FinetuneOptions {
        model: model.clone(),
        data: new.clone(),
        out: tmp.path().join(out),
        steps: 20,
        lr: Some(3e-3),
        batch: Some(16),
        val_fraction: 0.3,
        seed: 9,
        anchor: Some(base.clone()),
        anchor_count: 20,
        anchor_from: AnchorFrom::Outside,
        freeze,
        l2sp: 0.1,
        gate: false,
        gate_width: FinetuneOptions::DEFAULT_GATE_WIDTH,
        check: vec![],
        backend: BackendChoice::Cpu,
        resume: false,
        force: false,
        progress: false,
    };
    // `features`: every hidden layer (linear, batch norm and its statistics) stays.
    run(&opts(Freeze::Features, "features"));
    assert_kept(&model, &tmp.path().join("features"), |p| {
        !p.contains("output")
    });
    // `norm`: batch-norm parameters and running statistics stay; linears train.
    run(&opts(Freeze::Norm, "norm"));
    assert_kept(&model, &tmp.path().join("norm"), |p| p.contains("norm"));
}

/// The relabelled stars of [`relabelled`] hotter than log Teff 3.85 only: a
/// new set covering part of the parent's domain.
fn relabelled_hot(dir: &Path) -> PathBuf {
    let all = std::fs::read_to_string(relabelled(dir)).unwrap();
    let mut lines = all.lines();
    let mut w = format!("{}\n", lines.next().unwrap());
    for line in lines.filter(|l| l.split(',').nth(1).unwrap().parse::<f64>().unwrap() > 3.85) {
        w.push_str(line);
        w.push('\n');
    }
    let path = dir.join("relabelled-hot.csv");
    std::fs::write(&path, w).unwrap();
    path
}

#[test]
fn the_gate_keeps_the_parent_far_from_the_new_set_and_the_finetuned_members_inside_it() {
    use spectrain::dataset::Dataset;
    use spectrain::ensemble::Ensemble;
    let tmp = tempfile::tempdir().unwrap();
    let (base, model) = parent(tmp.path());
    let new = tmp.path().join("hot.h5");
    prepare(&relabelled_hot(tmp.path()), &new);
    let opts = FinetuneOptions {
        steps: 60,
        lr: Some(3e-3),
        batch: Some(16),
        val_fraction: 0.3,
        seed: 4,
        anchor: Some(base.clone()),
        anchor_count: 20,
        backend: BackendChoice::Cpu,
        ..FinetuneOptions::new(model.clone(), new.clone(), tmp.path().join("gated"))
    };
    let r = run(&opts);
    let g = r.gate.expect("a gate by default");
    assert!(g.inner > 0.0 && g.outer > g.inner, "{g:?}");
    let ungated = run(&FinetuneOptions {
        gate: false,
        out: tmp.path().join("ungated"),
        ..opts.clone()
    });
    assert!(ungated.gate.is_none());
    assert!(!tmp.path().join("ungated/gate.json").exists());
    // Anchors from everywhere: the pool is the parent's whole training split.
    let everywhere = run(&FinetuneOptions {
        anchor_from: AnchorFrom::Everywhere,
        out: tmp.path().join("everywhere"),
        ..opts.clone()
    });
    let rows = spectrain::dataset::Dataset::read(&base).unwrap().len();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("spec.json")).unwrap()).unwrap();
    let t = &spec["training"];
    let split = spectrain::dataset::sampling::Split::new(
        rows,
        t["val_fraction"].as_f64().unwrap(),
        t["seed"].as_u64().unwrap(),
    );
    assert_eq!(everywhere.anchor_pool, split.train.len());
    assert!(r.anchor_pool < split.train.len());

    // Every row of the parent's data through the three models.
    let _one = one_at_a_time();
    let device = BackendChoice::Cpu.open().unwrap().device;
    let parent = Ensemble::load(&model, &device).unwrap();
    let gated = Ensemble::load(&opts.out, &device).unwrap();
    let plain = Ensemble::load(&tmp.path().join("ungated"), &device).unwrap();
    let data = Dataset::read(&base).unwrap();
    let (pp, pg, pu) = (
        parent.predict(&data.inputs, 256),
        gated.predict(&data.inputs, 256),
        plain.predict(&data.inputs, 256),
    );
    // The gated model's own members are the ungated model's, bit for bit.
    assert_eq!(gated.predict_own(&data.inputs, 256), pu);
    let w = gated.gate_weights(&data.inputs).unwrap();
    let (mut inside, mut outside, mut between) = (0, 0, 0);
    for (i, &w) in w.iter().enumerate() {
        let v = |p: &spectrain::ensemble::Predictions| (p.mean(i, 0), p.sigma(i, 0), p.std(i, 0));
        if w == 0.0 {
            // Far from the new set: the parent's prediction, bit for bit.
            assert_eq!(v(&pg), v(&pp), "row {i}");
            outside += 1;
        } else if w == 1.0 {
            assert_eq!(v(&pg), v(&pu), "row {i}");
            inside += 1;
        } else {
            let blend = w * pu.mean(i, 0) + (1.0 - w) * pp.mean(i, 0);
            assert!((pg.mean(i, 0) - blend).abs() < 1e-5, "row {i}");
            between += 1;
        }
    }
    assert!(
        inside > 20 && outside > 100,
        "{inside} in, {between} between, {outside} out"
    );
    // The cool stars the new set never covered keep the parent's masses.
    let cool: Vec<usize> = (0..data.len())
        .filter(|&i| (data.inputs[i * 2] as f64) < 3.78)
        .collect();
    assert!(cool.iter().all(|&i| w[i] == 0.0), "a cool star is gated in");

    // A changed parent copy is refused at load, naming the file.
    let spec = opts.out.join("parent/spec.json");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replacen('{', "{ ", 1)).unwrap();
    let err = Ensemble::load(&opts.out, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("parent/spec.json"), "{err}");
}

#[test]
fn anchor_pool_matches_the_numpy_reference_on_real_stars() {
    let g = fixture("anchor_golden.json");
    let z: Vec<f32> = floats(&g["inputs"]).iter().map(|&v| v as f32).collect();
    let rows = |k: &str| -> Vec<usize> {
        g[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let (new, candidates) = (rows("new_rows"), rows("candidates"));
    let mut pool = AnchorPool::outside_inputs(&z, &z, 2, &candidates, &new);
    assert_close(
        "radius",
        &[pool.radius.unwrap()],
        &[g["radius"].as_f64().unwrap()],
        1e-9,
    );
    assert_eq!(pool.rows, rows("pool"));
    // Strata partition the pool; a draw takes one row from each.
    pool.stratify(&z, 2, 50, 1);
    assert_eq!(pool.strata.len(), 50);
    let mut all: Vec<usize> = pool.strata.concat();
    all.sort_unstable();
    assert_eq!(all, pool.rows);
    let drawn = pool.draw(3);
    assert_eq!(drawn.len(), 50);
    for (row, stratum) in drawn.iter().zip(&pool.strata) {
        assert!(stratum.contains(row));
    }
    assert_ne!(drawn, pool.draw(4));
}

/// `n` real spectra of `assets/spectra` (a "new survey") with their labels,
/// [Fe/H] shifted by +0.2 dex (a recalibrated scale), prepared like the parent's data.
fn new_survey(dir: &Path, n: usize) -> PathBuf {
    let spectra = dir.join("survey");
    std::fs::create_dir_all(&spectra).unwrap();
    let mut r = csv::Reader::from_path(repo().join("assets/labels.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let (file, feh) = (
        h.iter().position(|c| c == "file").unwrap(),
        h.iter().position(|c| c == "feh").unwrap(),
    );
    let mut w = csv::Writer::from_path(spectra.join("labels.csv")).unwrap();
    w.write_record(&h).unwrap();
    for rec in r.records().map(Result::unwrap).step_by(7).take(n) {
        std::os::unix::fs::symlink(
            repo().join("assets/spectra").join(&rec[file]),
            spectra.join(&rec[file]),
        )
        .unwrap();
        let shifted = rec[feh].parse::<f64>().unwrap() + 0.2;
        let row: Vec<String> = rec
            .iter()
            .enumerate()
            .map(|(k, v)| {
                if k == feh {
                    shifted.to_string()
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    let out = dir.join("survey.h5");
    let status = spectrain()
        .args(["-q", "prepare", "--columns", "teff,logg,feh"])
        .arg("--spectra")
        .arg(&spectra)
        .arg("--labels")
        .arg(spectra.join("labels.csv"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn densenet_finetune_on_real_spectra_with_anchors_and_frozen_features() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, model) = tiny_model(tmp.path());
    let new = new_survey(tmp.path(), 24);
    let opts = FinetuneOptions {
        steps: 6,
        lr: Some(1e-3),
        batch: Some(8),
        val_fraction: 0.25,
        seed: 4,
        anchor: Some(data.clone()),
        freeze: Freeze::Features,
        check: vec![data.clone()],
        backend: BackendChoice::Cpu,
        // The defaults: 1000 anchors (more than the pool holds), L2-SP 0.1.
        ..FinetuneOptions::new(model.clone(), new.clone(), tmp.path().join("ft"))
    };
    let r = run(&opts);
    // The anchor pool is the parent's training rows (8 of 11 real spectra)
    // away from the survey's spectra; asking for more than it holds takes it all.
    assert!(
        r.anchor_pool >= 1 && r.anchor_pool <= 8,
        "{}",
        r.anchor_pool
    );
    assert_eq!(r.anchors_per_member, r.anchor_pool);
    let held = r.held_out.rows;
    assert_eq!(held, 6);
    assert_eq!(r.parent_validation.as_ref().unwrap().labels.len(), 3);
    assert_eq!(r.checks.len(), 1);
    assert!(opts.out.join("domains.png").exists());
    assert!(std::fs::read_to_string(opts.out.join("finetune.md"))
        .unwrap()
        .contains("parent's validation split"));
    // Convolutional features (stem, blocks, final norm, integration) are the parent's, bit for bit.
    assert_kept(&model, &opts.out, |p| {
        !(p.contains("hidden") || p.contains("output"))
    });
}

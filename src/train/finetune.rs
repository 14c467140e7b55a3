//! `spectrain finetune`: transfer learning in the StelNet way (METHOD section 8).
//!
//! Every member of a trained ensemble starts from its own weights and trains
//! for a short schedule (a number of optimizer steps) on a bootstrap of a
//! small new dataset. Optionally a few anchor rows from the parent's training
//! data, chosen outside the new set's label range, join each member's
//! training set so the model keeps its behaviour where the new set has
//! nothing; optionally the features are frozen and only the head trains.
//!
//! The new set is split with a fixed seed: members train on its training part;
//! its held-out part scores the parent and the fine-tuned ensemble
//! (`finetune.json`, `finetune.md`). With `--anchor`, the parent's own
//! validation split of that dataset is scored too, to show what fine-tuning
//! cost where the parent was trained. The output is an ordinary model
//! directory; `provenance.json` names its parent.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::sampling::{bootstrap, derive_seed, Split, SplitMix64};
use super::{
    gather, label_ranges, open_model_dir, run_members, write_json, Keep, MemberPlan, Provenance,
    Run, Schedule, TrainError, TrainReport,
};
use crate::dataset::Dataset;
use crate::ensemble::{Ensemble, EnsembleSpec, InputEnvelope, Predictions, Task};
use crate::evaluate::{select_targets, Targets};
use crate::metrics::{log10_tension, RegressionMetrics};
use crate::model::BackendChoice;

#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// The parent model directory.
    pub model: PathBuf,
    /// The small, better-labelled dataset.
    pub data: PathBuf,
    pub out: PathBuf,
    /// Optimizer steps per member.
    pub steps: usize,
    /// Adam learning rate (default: the parent's).
    pub lr: Option<f64>,
    /// Batch size (default: the parent's, at most half the new training set).
    pub batch: Option<usize>,
    /// Held-out fraction of the new set (fixed-seed split).
    pub val_fraction: f64,
    pub seed: u64,
    /// The parent's training dataset, to draw anchor rows from.
    pub anchor: Option<PathBuf>,
    /// Anchor rows added to each member's training set.
    pub anchor_count: usize,
    /// Train only the head.
    pub freeze_features: bool,
    pub backend: BackendChoice,
    pub resume: bool,
    pub force: bool,
    pub progress: bool,
}

/// Parent against fine-tuned ensemble on one set of rows.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub set: String,
    pub rows: usize,
    pub labels: Vec<LabelComparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelComparison {
    pub label: String,
    pub parent: Scores,
    pub finetuned: Scores,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scores {
    pub mae: f64,
    pub pearson_r: f64,
    /// Fraction of rows with log10 tension >= 1 (METHOD section 6).
    pub in_tension: f64,
}

/// `finetune.json`.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub parent: String,
    pub data: String,
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    pub anchors_per_member: usize,
    pub anchor_pool: usize,
    pub freeze_features: bool,
    /// Where each reference uncertainty of the tension came from.
    pub reference_errors: Vec<String>,
    pub held_out: Comparison,
    pub parent_validation: Option<Comparison>,
    pub training: TrainReport,
}

/// Per-row reference uncertainty of each label: the dataset's `<label>_err`
/// column when it has one, otherwise 0 (the tension then uses the ensemble
/// spread alone).
fn reference_errors(data: &Dataset, labels: &[String]) -> (Vec<Vec<f64>>, Vec<String>) {
    labels
        .iter()
        .map(|name| {
            let err = format!("{name}_err");
            match data.label_names.iter().position(|l| *l == err) {
                Some(j) => (
                    (0..data.len())
                        .map(|i| data.label_row(i)[j] as f64)
                        .collect(),
                    format!("{name}: column {err}"),
                ),
                None => (vec![0.0; data.len()], format!("{name}: none (0)")),
            }
        })
        .unzip()
}

fn scores(
    preds: &Predictions,
    targets: &Targets,
    rows: &[usize],
    errs: &[f64],
    j: usize,
) -> Scores {
    let l = targets.names.len();
    let (mut p, mut y, mut tense) = (Vec::new(), Vec::new(), 0usize);
    for (i, &r) in rows.iter().enumerate() {
        let (mu, s) = (preds.mean(i, j), preds.std(i, j));
        let t = targets.values[r * l + j] as f64;
        let e = errs[r];
        let tension = if s * s + e * e > 0.0 {
            log10_tension(mu, s, t, e)
        } else if mu == t {
            0.0
        } else {
            f64::INFINITY
        };
        tense += usize::from(tension >= 1.0);
        p.push(mu);
        y.push(t);
    }
    let m = RegressionMetrics::compute(&p, &y);
    Scores {
        mae: m.mae,
        pearson_r: m.pearson_r,
        in_tension: tense as f64 / rows.len().max(1) as f64,
    }
}

/// Scores parent and fine-tuned ensembles on `rows` of `data`.
fn compare(
    set: &str,
    data: &Dataset,
    targets: &Targets,
    rows: &[usize],
    parent: &Ensemble,
    child: &Ensemble,
) -> Comparison {
    let inputs = gather(&data.inputs, data.input_len(), rows);
    let (pp, pc) = (parent.predict(&inputs, 256), child.predict(&inputs, 256));
    let (errs, _) = reference_errors(data, &targets.names);
    Comparison {
        set: set.to_string(),
        rows: rows.len(),
        labels: targets
            .names
            .iter()
            .enumerate()
            .map(|(j, name)| LabelComparison {
                label: name.clone(),
                parent: scores(&pp, targets, rows, &errs[j], j),
                finetuned: scores(&pc, targets, rows, &errs[j], j),
            })
            .collect(),
    }
}

/// Checks `data` can go through the parent's network; returns its targets.
fn compatible(data: &Dataset, path: &Path, spec: &EnsembleSpec) -> Result<Targets, TrainError> {
    let bad = |reason: String| TrainError::Config(format!("{}: {reason}", path.display()));
    match (&data.features, &spec.features) {
        (Some(have), Some(want)) if *have != want.names => {
            return Err(bad(format!(
                "features {} differ from the model's {}",
                have.join(","),
                want.names.join(",")
            )))
        }
        (Some(_), None) => {
            return Err(bad(
                "a catalog-feature dataset, but the model reads spectra".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "a spectrum dataset, but the model reads catalog features".into(),
            ))
        }
        (None, None) if data.preprocess != spec.preprocess => {
            return Err(bad(
                "preprocessed with a different recipe than the model's training data".into(),
            ))
        }
        _ => {}
    }
    select_targets(data, Some(&spec.label_names), spec.task).map_err(|e| bad(e.to_string()))
}

/// Whether row `r` lies outside `ranges` in any label.
fn outside(values: &[f32], l: usize, r: usize, ranges: &[[f64; 2]]) -> bool {
    (0..l).any(|j| {
        let v = values[r * l + j] as f64;
        v < ranges[j][0] || v > ranges[j][1]
    })
}

pub fn finetune(opts: &FinetuneOptions) -> Result<FinetuneReport, TrainError> {
    let start = Instant::now();
    let mut inputs: Vec<(&str, &Path)> =
        vec![("parent model", &opts.model), ("dataset", &opts.data)];
    if let Some(a) = &opts.anchor {
        inputs.push(("anchor dataset", a));
    }
    crate::outputs::check_not_over_inputs(&opts.out, &inputs)?;
    let compute = opts.backend.resolve()?;
    tracing::info!("backend {} ({})", compute.backend, compute.reason);
    let parent = Ensemble::load(&opts.model, &compute.device)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let pspec = &parent.spec;
    if pspec.task != Task::Regress {
        return Err(TrainError::Config(
            "finetune supports regression models (its report is Pearson r and tension)".into(),
        ));
    }
    if opts.steps == 0 {
        return Err(TrainError::Config("--steps must be at least 1".into()));
    }
    let new = Dataset::read(&opts.data)?;
    let new_targets = compatible(&new, &opts.data, pspec)?;
    if new.len() < 3 {
        return Err(TrainError::Config(format!(
            "{} has {} rows: fine-tuning needs at least 3 (2 to train on, 1 held out)",
            opts.data.display(),
            new.len()
        )));
    }
    let split = Split::new(new.len(), opts.val_fraction, opts.seed);
    if split.train.len() < 2 || split.val.is_empty() {
        return Err(TrainError::Config(format!(
            "{} has {} rows: too few to fine-tune on and hold some out",
            opts.data.display(),
            new.len()
        )));
    }
    let l = new_targets.names.len();
    let new_ranges = label_ranges(&new_targets.values, l, &split.train);

    // The training table: the new set, then the anchor pool appended.
    // The training table holds the model's labels only, so anchor rows (from a
    // dataset that may carry other label columns) append cleanly.
    let mut data = new.clone();
    data.label_names = new_targets.names.clone();
    data.labels = new_targets.values.clone();
    let mut pool: Vec<usize> = Vec::new();
    let mut base: Option<(Dataset, Targets)> = None;
    if let Some(path) = &opts.anchor {
        let b = Dataset::read(path)?;
        let bt = compatible(&b, path, pspec)?;
        // The parent's own split of its data: anchors come from its training part.
        let psplit = Split::new(b.len(), pspec.training.val_fraction, pspec.training.seed);
        let eligible: Vec<usize> = psplit
            .train
            .iter()
            .copied()
            .filter(|&r| outside(&bt.values, l, r, &new_ranges))
            .collect();
        if eligible.len() < opts.anchor_count {
            tracing::warn!(
                "only {} rows of {} lie outside the new set's label range; {} anchors asked for",
                eligible.len(),
                path.display(),
                opts.anchor_count
            );
        }
        for &r in &eligible {
            pool.push(data.len());
            data.push(crate::dataset::Sample {
                id: b.ids[r].clone(),
                file: b.files[r].clone(),
                input: b.input(r).to_vec(),
                labels: bt.values[r * l..(r + 1) * l].to_vec(),
                snrg: b.snrg[r],
                ra: b.ra[r],
                dec: b.dec[r],
                z: b.z[r],
            });
        }
        base = Some((b, bt));
    }
    let targets = Targets {
        names: new_targets.names.clone(),
        values: data.labels.clone(),
        task: Task::Regress,
        classes: 0,
    };
    let anchors_per_member = opts.anchor_count.min(pool.len());

    let batch = opts
        .batch
        .unwrap_or(pspec.training.batch)
        .min((split.train.len() / 2).max(2))
        .max(2);
    let rows_per_member = split.train.len() + anchors_per_member;
    let batches_per_epoch = (rows_per_member / batch).max(1);
    let epochs = opts.steps.div_ceil(batches_per_epoch);
    let lr = opts.lr.unwrap_or(pspec.training.lr);

    let mut spec = pspec.clone();
    spec.training.epochs = epochs;
    spec.training.batch = batch;
    spec.training.lr = lr;
    spec.training.seed = opts.seed;
    spec.training.val_fraction = opts.val_fraction;
    // What the model has now seen: the parent's domain widened by the new set.
    for (r, n) in spec.domain.label_ranges.iter_mut().zip(&new_ranges) {
        *r = [r[0].min(n[0]), r[1].max(n[1])];
    }
    let new_snr = split
        .train
        .iter()
        .map(|&r| new.snrg[r])
        .filter(|s| s.is_finite());
    for s in new_snr {
        spec.domain.snrg_range = Some(match spec.domain.snrg_range {
            Some([lo, hi]) => [lo.min(s), hi.max(s)],
            None => [s, s],
        });
    }
    if let Some(env) = &mut spec.domain.input_envelope {
        let add = InputEnvelope::fit(&new.inputs, new.input_len(), &split.train);
        for k in 0..env.lo.len() {
            env.lo[k] = env.lo[k].min(add.lo[k]);
            env.hi[k] = env.hi[k].max(add.hi[k]);
        }
    }
    let lock = open_model_dir(&opts.out, &spec, opts.resume, opts.force)?;
    let mut provenance = Provenance::new("finetune", &compute, &opts.data)?;
    provenance.parent = Some(serde_json::json!({
        "model": opts.model.display().to_string(),
        "spec_sha256": super::sha256_file(&opts.model.join("spec.json"))?,
        "steps": opts.steps,
        "lr": lr,
        "batch": batch,
        "anchor_data": opts.anchor.as_ref().map(|p| p.display().to_string()),
        "anchors_per_member": anchors_per_member,
        "freeze_features": opts.freeze_features,
    }));
    write_json(&opts.out.join("provenance.json"), &provenance)?;

    // The parent's input standardisation applies unchanged.
    let mut inputs = data.inputs.clone();
    if let Some(f) = &spec.features {
        f.transform(&mut inputs);
    }
    let members = spec.training.members;
    let bar = crate::progress::bar((members * epochs) as u64, "finetune", opts.progress);
    let run = Run {
        data: &data,
        inputs: &inputs,
        targets: &targets,
        split: &split,
        spec: &spec,
        compute: &compute,
        out: &opts.out,
        schedule: Schedule {
            epochs,
            max_steps: Some(opts.steps),
            keep: Keep::Last,
        },
        bar,
        val_inputs: gather(&inputs, data.input_len(), &split.val),
    };
    let plans: Vec<MemberPlan> = (0..members)
        .map(|m| {
            let seed = derive_seed(opts.seed, 2000 + m as u64);
            let mut rows = bootstrap(&split.train, seed);
            let mut anchors = pool.clone();
            SplitMix64::new(derive_seed(seed, 7)).shuffle(&mut anchors);
            rows.extend(&anchors[..anchors_per_member]);
            MemberPlan {
                seed,
                rows,
                init: Some(opts.model.join(EnsembleSpec::member_file(m))),
                freeze_features: opts.freeze_features,
            }
        })
        .collect();
    let training = run_members(&run, &plans, start)?;

    let child = Ensemble::load(&opts.out, &compute.device)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let held_out = compare(
        "new set, held-out part",
        &new,
        &new_targets,
        &split.val,
        &parent,
        &child,
    );
    let parent_validation = base.as_ref().map(|(b, bt)| {
        let psplit = Split::new(b.len(), pspec.training.val_fraction, pspec.training.seed);
        compare(
            "parent's validation split",
            b,
            bt,
            &psplit.val,
            &parent,
            &child,
        )
    });
    let report = FinetuneReport {
        parent: opts.model.display().to_string(),
        data: opts.data.display().to_string(),
        steps: opts.steps,
        lr,
        batch,
        anchors_per_member,
        anchor_pool: pool.len(),
        freeze_features: opts.freeze_features,
        reference_errors: reference_errors(&new, &new_targets.names).1,
        held_out,
        parent_validation,
        training,
    };
    write_json(&opts.out.join("finetune.json"), &report)?;
    crate::atomic::write_atomically(&opts.out.join("finetune.md"), |tmp| {
        std::fs::write(tmp, report.markdown())
    })?;
    provenance.wall_seconds = start.elapsed().as_secs_f64();
    provenance.completed = true;
    write_json(&opts.out.join("provenance.json"), &provenance)?;
    lock.release_and_remove();
    Ok(report)
}

impl FinetuneReport {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Fine-tuning\n\nParent `{}`, new set `{}`: {} steps, lr {}, batch {}, {} anchors per member (pool {}), features {}.\n\nReference uncertainties for the tension: {}.\n",
            self.parent,
            self.data,
            self.steps,
            self.lr,
            self.batch,
            self.anchors_per_member,
            self.anchor_pool,
            if self.freeze_features { "frozen" } else { "trained" },
            self.reference_errors.join("; ")
        );
        for c in std::iter::once(&self.held_out).chain(&self.parent_validation) {
            s.push_str(&format!(
                "\n## {} ({} rows)\n\n| label | MAE parent | MAE fine-tuned | r parent | r fine-tuned | in tension parent | in tension fine-tuned |\n|---|---|---|---|---|---|---|\n",
                c.set, c.rows
            ));
            for l in &c.labels {
                s.push_str(&format!(
                    "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1}% | {:.1}% |\n",
                    l.label,
                    l.parent.mae,
                    l.finetuned.mae,
                    l.parent.pearson_r,
                    l.finetuned.pearson_r,
                    100.0 * l.parent.in_tension,
                    100.0 * l.finetuned.in_tension
                ));
            }
        }
        s
    }
}

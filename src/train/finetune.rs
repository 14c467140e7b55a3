//! `spectrain finetune`: transfer learning in the StelNet way (METHOD section 8).
//!
//! Every member of a trained ensemble starts from its own weights and trains
//! for a short schedule (a number of optimizer steps) on a bootstrap of a
//! small new dataset, with four defences for what the parent already knew:
//!
//! - **the domain gate** (default): the model directory keeps the parent
//!   (`parent/`) and the new set's rows; far from them the parent's members
//!   answer, bit for bit ([`crate::ensemble::gate`]);
//! - **anchors**: rows of the parent's training split that lie away from the
//!   new set in the model's own standardised input space (k-nearest-neighbour
//!   distance, [`AnchorPool`]; or every row, [`AnchorFrom::Everywhere`]),
//!   stratified over the old domain, join each member's training set with
//!   their own labels;
//! - **frozen batch norms** (`Freeze::Norm`, the default): the parent's
//!   running statistics stay; re-estimating them on the fine-tuning batches
//!   was what shifted predictions everywhere (issue 14);
//! - **L2-SP**: a penalty on the distance of every trained weight to the
//!   parent's ([`L2Sp`]).
//!
//! The new set is split with a fixed seed: members train on its training part;
//! its held-out part scores the parent and the fine-tuned ensemble
//! (`finetune.json`, `finetune.md`). With `--anchor`, the parent's own
//! validation split of that dataset is scored too, to show what fine-tuning
//! cost where the parent was trained, and `domains.png` shows both domains
//! with the anchors. `--check` datasets (real stars outside the new set's
//! domain) get the same before/after table. The output is an ordinary model
//! directory; `provenance.json` names its parent.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use serde::Serialize;

use super::member::{Keep, MemberPlan, Run, Schedule};
use super::{open_model_dir, score_members, write_json, Provenance, TrainError, TrainReport};
use crate::dataset::sampling::{bootstrap, derive_seed, gather, Split, SplitMix64};
use crate::dataset::{select_targets, Dataset, Targets};
use crate::ensemble::gate::dist2;
use crate::ensemble::{
    Ensemble, EnsembleSpec, Gate, LrSchedule, Predictions, Task, TrainingDomain,
};
use crate::metrics::{log10_tension, RegressionMetrics};
use crate::model::{BackendChoice, Network};

#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// The parent model directory.
    pub model: PathBuf,
    /// The small, better-labelled dataset.
    pub data: PathBuf,
    pub out: PathBuf,
    /// Optimizer steps per member.
    pub steps: usize,
    /// Adam learning rate (default: the parent's; a tenth of its peak for a cosine-schedule parent).
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
    /// Where in the old domain anchors may lie.
    pub anchor_from: AnchorFrom,
    /// What stays as the parent left it.
    pub freeze: Freeze,
    /// L2-SP strength: `alpha * sum (w - w_parent)^2` joins the loss (0: off).
    pub l2sp: f64,
    /// Gate the fine-tuned members by the new set's domain ([`crate::ensemble::gate`]):
    /// far from it the parent answers unchanged.
    pub gate: bool,
    /// The gate's blend zone: the child's weight falls from 1 at the domain
    /// radius r to 0 at `r * (1 + gate_width)`.
    pub gate_width: f64,
    /// Further labelled datasets scored before and after (real stars outside
    /// the new set's domain): `finetune.md` gets one table each.
    pub check: Vec<PathBuf>,
    pub backend: BackendChoice,
    pub resume: bool,
    pub force: bool,
    pub progress: bool,
}

impl FinetuneOptions {
    /// Optimizer steps per member.
    pub const DEFAULT_STEPS: usize = 100;
    pub const DEFAULT_VAL_FRACTION: f64 = 0.2;
    pub const DEFAULT_SEED: u64 = 42;
    /// Anchors per member: 1000 kept the parent's validation MAE within 5%
    /// in the StelNet example (README); 30 let it double.
    pub const DEFAULT_ANCHOR_COUNT: usize = 1000;
    /// Frozen batch norms: re-estimated statistics moved predictions everywhere.
    pub const DEFAULT_FREEZE: Freeze = Freeze::Norm;
    pub const DEFAULT_L2SP: f64 = 0.1;
    /// The gate blends over one domain radius beyond the radius.
    pub const DEFAULT_GATE_WIDTH: f64 = 1.0;

    /// Fine-tuning of `model` on `data` into `out` with the defaults
    /// `spectrain finetune` uses: no anchor set, no check sets, the parent's
    /// learning rate and batch, the `auto` backend, no progress bar.
    pub fn new(model: PathBuf, data: PathBuf, out: PathBuf) -> Self {
        Self {
            model,
            data,
            out,
            steps: Self::DEFAULT_STEPS,
            lr: None,
            batch: None,
            val_fraction: Self::DEFAULT_VAL_FRACTION,
            seed: Self::DEFAULT_SEED,
            anchor: None,
            anchor_count: Self::DEFAULT_ANCHOR_COUNT,
            anchor_from: AnchorFrom::Outside,
            freeze: Self::DEFAULT_FREEZE,
            l2sp: Self::DEFAULT_L2SP,
            gate: true,
            gate_width: Self::DEFAULT_GATE_WIDTH,
            check: Vec::new(),
            backend: BackendChoice::Auto,
            resume: false,
            force: false,
            progress: false,
        }
    }
}

/// Which of the parent's training rows may be anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorFrom {
    /// Only rows away from the new set in input space: for a new set whose
    /// labels are on another scale than the parent's (real stars after
    /// isochrones), where parent rows beside it would contradict it.
    Outside,
    /// Every training row, stratified over the whole old domain (rehearsal):
    /// for a new set on the same label scale that extends the domain (hotter
    /// stars of the same survey), where the parent's stars beside the new
    /// ones are as true as they are.
    Everywhere,
}

/// What fine-tuning leaves as the parent had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Freeze {
    /// Every weight trains and batch norms re-estimate their statistics on
    /// the fine-tuning batches.
    None,
    /// Batch norms keep the parent's statistics and affine parameters; every
    /// other weight trains. Re-estimated statistics describe the fine-tuning
    /// mix, not the parent's domain, and shift predictions everywhere.
    Norm,
    /// Everything but the fully connected head (batch norms included).
    Features,
}

/// Neighbours counted in the input-space distance to the new set.
pub const ANCHOR_NEIGHBOURS: usize = 5;
/// Quantile of the new set's own neighbour distances that bounds its domain.
pub const ANCHOR_RADIUS_QUANTILE: f64 = 0.9;

/// Parent against fine-tuned ensemble on one set of rows.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub set: String,
    pub rows: usize,
    /// With a gate: rows the fine-tuned members answer alone, rows blended,
    /// and rows the parent answers alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gated: Option<[usize; 3]>,
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

/// The gate `finetune` wrote: neighbours and blend distances.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GateSummary {
    pub neighbours: usize,
    pub inner: f64,
    pub outer: f64,
    pub rows: usize,
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
    pub anchor_from: AnchorFrom,
    /// The new set's domain radius in standardised input units.
    pub anchor_radius: Option<f64>,
    pub freeze: Freeze,
    pub l2sp: f64,
    /// The domain gate written with the model, if any.
    pub gate: Option<GateSummary>,
    /// Where each reference uncertainty of the tension came from.
    pub reference_errors: Vec<String>,
    pub held_out: Comparison,
    pub parent_validation: Option<Comparison>,
    /// The same split without its rows inside the new set's domain (by the
    /// anchor rule): where fine-tuning should change nothing.
    pub parent_validation_outside: Option<Comparison>,
    /// One per `--check` dataset.
    pub checks: Vec<Comparison>,
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
    let gated = child.gate_weights(&inputs).map(|weights| {
        let mut counts = [0usize; 3];
        for w in weights {
            counts[if w >= 1.0 {
                0
            } else if w > 0.0 {
                1
            } else {
                2
            }] += 1;
        }
        counts
    });
    Comparison {
        set: set.to_string(),
        rows: rows.len(),
        gated,
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

/// For each row of `from` (in `za`), the distance to its `k`-th nearest row of
/// `to` (in `zb`), skipping the row itself when `za` and `zb` are one table.
fn kth_distance(
    za: &[f32],
    zb: &[f32],
    per: usize,
    from: &[usize],
    to: &[usize],
    k: usize,
    same: bool,
) -> Vec<f64> {
    let mut d = Vec::with_capacity(to.len());
    from.iter()
        .map(|&a| {
            d.clear();
            let ra = &za[a * per..(a + 1) * per];
            d.extend(
                to.iter()
                    .filter(|&&b| !(same && a == b))
                    .map(|&b| dist2(ra, &zb[b * per..(b + 1) * per])),
            );
            if d.is_empty() {
                return f64::INFINITY;
            }
            let k = k.clamp(1, d.len()) - 1;
            let (_, kth, _) = d.select_nth_unstable_by(k, f64::total_cmp);
            kth.sqrt()
        })
        .collect()
}

/// The new set's domain in input space: the neighbour count k and the
/// radius, the `ANCHOR_RADIUS_QUANTILE` quantile over `new_rows` (of `zn`) of
/// the distance to their k-th nearest other new row.
pub fn domain_radius(zn: &[f32], per: usize, new_rows: &[usize]) -> (usize, f64) {
    let k = ANCHOR_NEIGHBOURS
        .min(new_rows.len().saturating_sub(1))
        .max(1);
    let mut own = kth_distance(zn, zn, per, new_rows, new_rows, k, true);
    own.retain(|d| d.is_finite());
    own.sort_by(f64::total_cmp);
    let radius = if own.is_empty() {
        0.0
    } else {
        own[((own.len() - 1) as f64 * ANCHOR_RADIUS_QUANTILE).round() as usize]
    };
    (k, radius)
}

/// The rows anchors are drawn from, grouped into strata that tile the old
/// domain evenly.
#[derive(Debug, Clone, Default)]
pub struct AnchorPool {
    /// Rows of the parent's dataset eligible as anchors.
    pub rows: Vec<usize>,
    /// The new set's domain radius (`input` rule), in standardised input units.
    pub radius: Option<f64>,
    /// Disjoint groups of `rows` (indices into the parent's dataset); each
    /// member draws one anchor from each.
    pub strata: Vec<Vec<usize>>,
}

impl AnchorPool {
    /// Parent rows `candidates` (of `zb`) farther from the new set's rows
    /// `new_rows` (of `zn`) than the new set's own spacing: the
    /// `ANCHOR_RADIUS_QUANTILE` quantile, over the new rows, of the distance
    /// to their `ANCHOR_NEIGHBOURS`-th nearest other new row. Both tables are
    /// model-ready inputs (catalog features standardised with the parent's
    /// scaler).
    pub fn outside_inputs(
        zb: &[f32],
        zn: &[f32],
        per: usize,
        candidates: &[usize],
        new_rows: &[usize],
    ) -> Self {
        let (k, radius) = domain_radius(zn, per, new_rows);
        let far = kth_distance(zb, zn, per, candidates, new_rows, k, false);
        Self {
            rows: candidates
                .iter()
                .zip(&far)
                .filter(|(_, d)| **d > radius)
                .map(|(r, _)| *r)
                .collect(),
            radius: Some(radius),
            strata: Vec::new(),
        }
    }

    /// Splits the pool into `n` strata: `n` centres chosen by farthest-point
    /// traversal of the pool (seeded start), every row joining its nearest
    /// centre. Strata follow the extent of the old domain, not its density,
    /// so sparse regions get anchors too.
    pub fn stratify(&mut self, z: &[f32], per: usize, n: usize, seed: u64) {
        let rows = &self.rows;
        let n = n.min(rows.len());
        if n == 0 {
            self.strata = Vec::new();
            return;
        }
        let row = |i: usize| &z[rows[i] * per..(rows[i] + 1) * per];
        let mut nearest = vec![f64::INFINITY; rows.len()];
        let mut owner = vec![0usize; rows.len()];
        let mut centre = SplitMix64::new(seed).below(rows.len());
        for c in 0..n {
            let zc = row(centre).to_vec();
            let mut far = (0usize, -1.0f64);
            for i in 0..rows.len() {
                let d = dist2(row(i), &zc);
                if d < nearest[i] {
                    nearest[i] = d;
                    owner[i] = c;
                }
                if nearest[i] > far.1 {
                    far = (i, nearest[i]);
                }
            }
            centre = far.0;
        }
        let mut strata = vec![Vec::new(); n];
        for (i, &c) in owner.iter().enumerate() {
            strata[c].push(rows[i]);
        }
        strata.retain(|s| !s.is_empty());
        self.strata = strata;
    }

    /// One row from each stratum, drawn with `seed`.
    pub fn draw(&self, seed: u64) -> Vec<usize> {
        let mut rng = SplitMix64::new(seed);
        self.strata.iter().map(|s| s[rng.below(s.len())]).collect()
    }
}

/// What fine-tuning adds to a member's training loop ([`super::Run::member_tuned`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tuning {
    /// Batch norms keep the parent's statistics and affine parameters.
    pub freeze_norm: bool,
    /// L2-SP strength toward the member's initial weights (0: off).
    pub l2sp: f64,
}

/// L2-SP (Li X. et al. 2018): a penalty `alpha * sum (w - w0)^2` over every
/// trained weight, `w0` the parent member's value, that keeps the network
/// near its parent wherever the fine-tuning data do not pull it away.
pub(crate) struct L2Sp {
    alpha: f64,
    /// The parent's tensors in the order a module visit meets them, flattened.
    start: Vec<Tensor<1>>,
}

impl L2Sp {
    /// `parent`: the member's starting network, on the training device.
    pub(crate) fn new(parent: &Network, alpha: f64) -> Self {
        struct Collect(Vec<Tensor<1>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.val().detach().flatten(0, D - 1));
            }
        }
        let mut c = Collect(Vec::new());
        parent.visit(&mut c);
        Self { alpha, start: c.0 }
    }

    /// The penalty of `model` (same architecture as the parent), a scalar.
    pub(crate) fn penalty(&self, model: &Network) -> Option<Tensor<1>> {
        struct Sum<'a> {
            start: &'a [Tensor<1>],
            next: usize,
            total: Option<Tensor<1>>,
        }
        impl ModuleVisitor for Sum<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let w = param.val();
                let k = self.next;
                self.next += 1;
                // Frozen weights and batch-norm statistics carry no gradient.
                if !w.is_require_grad() {
                    return;
                }
                let d = (w.flatten(0, D - 1) - self.start[k].clone())
                    .powi_scalar(2)
                    .sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + d,
                    None => d,
                });
            }
        }
        let mut s = Sum {
            start: &self.start,
            next: 0,
            total: None,
        };
        model.visit(&mut s);
        s.total.map(|t| t.mul_scalar(self.alpha))
    }
}

/// Copies the parent model into `out/parent` (replacing a gate a killed run
/// left) and writes the gate beside it.
fn write_gate(parent: &Path, out: &Path, gate: &Gate, members: usize) -> Result<(), TrainError> {
    let files = crate::model_dir::ModelDir::new(out);
    files.remove_gate()?;
    crate::model_dir::ModelDir::new(parent).copy_model(&files.parent(), members)?;
    gate.save(out, &files.parent(), members)?;
    Ok(())
}

/// The seed of fine-tuned member `m`.
fn member_seed(seed: u64, m: usize) -> u64 {
    derive_seed(seed, 2000 + m as u64)
}

pub fn finetune(opts: &FinetuneOptions) -> Result<FinetuneReport, TrainError> {
    let start = Instant::now();
    let mut inputs: Vec<(&str, &Path)> =
        vec![("parent model", &opts.model), ("dataset", &opts.data)];
    if let Some(a) = &opts.anchor {
        inputs.push(("anchor dataset", a));
    }
    inputs.extend(opts.check.iter().map(|c| ("--check dataset", c.as_path())));
    crate::outputs::check_not_over_inputs(&opts.out, &inputs)?;
    let compute = opts.backend.open()?;
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
    // Model-ready inputs: catalog features standardised with the parent's scaler.
    let standardised = |d: &Dataset| {
        let mut z = d.inputs.clone();
        if let Some(f) = &pspec.features {
            f.transform(&mut z);
        }
        z
    };
    let z_new = standardised(&new);

    // The training table: the new set, then the anchor pool appended.
    // The training table holds the model's labels only, so anchor rows (from a
    // dataset that may carry other label columns) append cleanly.
    let mut data = new.clone();
    data.label_names = new_targets.names.clone();
    data.labels = new_targets.values.clone();
    let mut pool = AnchorPool::default();
    let mut base: Option<(Dataset, Targets)> = None;
    // Training-table rows of each member's anchors; the parent rows drawn.
    let mut anchor_rows: Vec<Vec<usize>> = Vec::new();
    let mut drawn: Vec<usize> = Vec::new();
    // The parent's validation rows outside the new set's domain.
    let mut outside_val: Vec<usize> = Vec::new();
    if let Some(path) = &opts.anchor {
        let b = Dataset::read(path)?;
        let bt = compatible(&b, path, pspec)?;
        let z_base = standardised(&b);
        // The parent's own split of its data: anchors come from its training part.
        let psplit = Split::new(b.len(), pspec.training.val_fraction, pspec.training.seed);
        pool =
            AnchorPool::outside_inputs(&z_base, &z_new, b.input_len(), &psplit.train, &split.train);
        if opts.anchor_from == AnchorFrom::Everywhere {
            pool.rows = psplit.train.clone();
        }
        pool.stratify(
            &z_base,
            b.input_len(),
            opts.anchor_count,
            derive_seed(opts.seed, 3000),
        );
        if pool.rows.len() < opts.anchor_count {
            tracing::warn!(
                "only {} rows of {} lie outside the new set's domain; {} anchors asked for",
                pool.rows.len(),
                path.display(),
                opts.anchor_count
            );
        }
        // Each member draws its own anchors; every row drawn joins the table once.
        let draws: Vec<Vec<usize>> = (0..pspec.training.members)
            .map(|m| pool.draw(derive_seed(member_seed(opts.seed, m), 7)))
            .collect();
        let union: Vec<usize> = draws
            .iter()
            .flatten()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let first = data.len();
        for &r in &union {
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
        anchor_rows = draws
            .iter()
            .map(|rows| {
                rows.iter()
                    .map(|r| first + union.binary_search(r).expect("drawn rows are in the union"))
                    .collect()
            })
            .collect();
        drawn = union;
        outside_val =
            AnchorPool::outside_inputs(&z_base, &z_new, b.input_len(), &psplit.val, &split.train)
                .rows;
        base = Some((b, bt));
    }
    let targets = Targets {
        names: new_targets.names.clone(),
        values: data.labels.clone(),
        task: Task::Regress,
        classes: 0,
    };
    let anchors_per_member = anchor_rows.first().map_or(0, Vec::len);

    let batch = opts
        .batch
        .unwrap_or(pspec.training.batch)
        .min((split.train.len() / 2).max(2))
        .max(2);
    let rows_per_member = split.train.len() + anchors_per_member;
    let batches_per_epoch = (rows_per_member / batch).max(1);
    let epochs = opts.steps.div_ceil(batches_per_epoch);
    // The parent's learning rate; a tenth of its peak when the parent decayed
    // it (a cosine run ends near zero, and its peak would undo the parent).
    let lr = opts.lr.unwrap_or(match pspec.training.lr_schedule {
        LrSchedule::Constant => pspec.training.lr,
        LrSchedule::Cosine => pspec.training.lr / 10.0,
    });

    let mut spec = pspec.clone();
    spec.training.epochs = epochs;
    spec.training.batch = batch;
    spec.training.lr = lr;
    // Fine-tuning keeps a constant rate; L2-SP, not weight decay, holds it near the parent.
    spec.training.lr_schedule = LrSchedule::Constant;
    spec.training.warmup_epochs = 0;
    spec.training.weight_decay = 0.0;
    spec.training.seed = opts.seed;
    spec.training.val_fraction = opts.val_fraction;
    // What the model has now seen: the parent's domain widened by the new set.
    // (The envelope only where the parent has one: spectra, not catalog features.)
    let added = TrainingDomain::fit(
        &new_targets.values,
        l,
        &new.snrg,
        spec.domain
            .input_envelope
            .is_some()
            .then(|| (&new.inputs[..], new.input_len())),
        &split.train,
    );
    spec.domain.widen(&added);
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
        "anchor_from": opts.anchor_from,
        "freeze": opts.freeze,
        "l2sp": opts.l2sp,
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
            let seed = member_seed(opts.seed, m);
            let mut rows = bootstrap(&split.train, seed);
            if let Some(a) = anchor_rows.get(m) {
                rows.extend(a);
            }
            MemberPlan {
                seed,
                rows,
                init: Some(opts.model.join(EnsembleSpec::member_file(m))),
                freeze_features: opts.freeze == Freeze::Features,
            }
        })
        .collect();
    let tuning = Tuning {
        freeze_norm: opts.freeze == Freeze::Norm,
        l2sp: opts.l2sp,
    };
    let members = plans
        .iter()
        .enumerate()
        .map(|(m, plan)| run.member_tuned(m, plan, &tuning))
        .collect::<Result<Vec<_>, _>>()?;
    let training = score_members(&run, &plans, members, start)?;
    // The gate (after scoring: calibration.json describes the fine-tuned
    // members themselves, on the new set's held-out part).
    let gate = if opts.gate {
        let (k, radius) = domain_radius(&z_new, new.input_len(), &split.train);
        let gate = Gate {
            neighbours: k,
            inner: radius,
            outer: radius * (1.0 + opts.gate_width),
            rows: gather(&z_new, new.input_len(), &split.train),
            per: new.input_len(),
        };
        if gate.outer > gate.inner {
            write_gate(&opts.model, &opts.out, &gate, pspec.training.members)?;
            Some(gate)
        } else {
            // A zero radius (duplicated rows) would gate nothing in.
            tracing::warn!(
                "the new set's training rows have no spread in input space (radius {radius}): no gate"
            );
            None
        }
    } else {
        None
    };
    if gate.is_none() {
        // A gate a killed run with other options left behind.
        crate::model_dir::ModelDir::new(&opts.out).remove_gate()?;
    }

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
    let parent_validation_outside = base.as_ref().map(|(b, bt)| {
        compare(
            "parent's validation split, outside the new set's domain",
            b,
            bt,
            &outside_val,
            &parent,
            &child,
        )
    });
    let mut checks = Vec::new();
    for path in &opts.check {
        let d = Dataset::read(path)?;
        let t = compatible(&d, path, pspec)?;
        let rows: Vec<usize> = (0..d.len()).collect();
        checks.push(compare(
            &path.display().to_string(),
            &d,
            &t,
            &rows,
            &parent,
            &child,
        ));
    }
    // Both domains in the first two model inputs, anchors marked.
    let per = new.input_len();
    if per >= 2 {
        let xy = |z: &[f32], rows: &mut dyn Iterator<Item = usize>| -> Vec<(f64, f64)> {
            rows.map(|r| (z[r * per] as f64, z[r * per + 1] as f64))
                .collect()
        };
        let names = match &pspec.features {
            Some(f) => [f.names[0].clone(), f.names[1].clone()],
            None => ["input 0".to_string(), "input 1".to_string()],
        }
        .map(|n| format!("{n} (standardised)"));
        let (old, anchors) = match &base {
            Some((b, _)) => {
                let z = standardised(b);
                let psplit = Split::new(b.len(), pspec.training.val_fraction, pspec.training.seed);
                let step = (psplit.train.len() / 4000).max(1);
                (
                    xy(&z, &mut psplit.train.iter().copied().step_by(step)),
                    xy(&z, &mut drawn.iter().copied()),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        let sets = crate::plot::DomainSets {
            parent: old,
            anchors,
            new_train: xy(&z_new, &mut split.train.iter().copied()),
            new_held_out: xy(&z_new, &mut split.val.iter().copied()),
        };
        if let Err(e) = crate::plot::input_domains(&opts.out.join("domains.png"), &names, &sets) {
            tracing::warn!("{e}");
        }
    }
    let report = FinetuneReport {
        parent: opts.model.display().to_string(),
        data: opts.data.display().to_string(),
        steps: opts.steps,
        lr,
        batch,
        anchors_per_member,
        anchor_pool: pool.rows.len(),
        anchor_from: opts.anchor_from,
        anchor_radius: pool.radius,
        freeze: opts.freeze,
        l2sp: opts.l2sp,
        gate: gate.as_ref().map(|g| GateSummary {
            neighbours: g.neighbours,
            inner: g.inner,
            outer: g.outer,
            rows: g.rows.len() / g.per.max(1),
        }),
        reference_errors: reference_errors(&new, &new_targets.names).1,
        held_out,
        parent_validation,
        parent_validation_outside,
        checks,
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
        let anchors = if self.anchor_pool == 0 {
            "no anchors".to_string()
        } else {
            let pool = match self.anchor_from {
                AnchorFrom::Outside => format!(
                    "the parent's training rows farther than {:.3} from the new set in standardised inputs",
                    self.anchor_radius.unwrap_or(f64::NAN)
                ),
                AnchorFrom::Everywhere => "every training row of the parent".to_string(),
            };
            format!(
                "{} anchors per member (pool {}: {pool})",
                self.anchors_per_member, self.anchor_pool,
            )
        };
        let mut s = format!(
            "# Fine-tuning\n\nParent `{}`, new set `{}`: {} steps, lr {}, batch {}, {}, frozen: {}, L2-SP {}.\n\nReference uncertainties for the tension: {}.\n",
            self.parent,
            self.data,
            self.steps,
            self.lr,
            self.batch,
            anchors,
            match self.freeze {
                Freeze::None => "nothing",
                Freeze::Norm => "batch norms",
                Freeze::Features => "features",
            },
            self.l2sp,
            self.reference_errors.join("; ")
        );
        match &self.gate {
            Some(g) => s.push_str(&format!(
                "\nGate: the fine-tuned members answer within {:.3} of the new set ({}-th nearest of its {} training rows, standardised inputs), the parent beyond {:.3}, a linear blend between (`parent/`, `gate.json`).\n",
                g.inner, g.neighbours, g.rows, g.outer
            )),
            None => s.push_str("\nNo gate: the fine-tuned members answer everywhere.\n"),
        }
        let sets = std::iter::once(&self.held_out)
            .chain(&self.parent_validation)
            .chain(&self.parent_validation_outside)
            .chain(&self.checks);
        for c in sets {
            s.push_str(&format!(
                "\n## {} ({} rows{})\n\n| label | MAE parent | MAE fine-tuned | change | r parent | r fine-tuned | in tension parent | in tension fine-tuned |\n|---|---|---|---|---|---|---|---|\n",
                c.set,
                c.rows,
                c.gated.map_or(String::new(), |[i, b, o]| format!(
                    "; gate: {i} fine-tuned, {b} blended, {o} parent"
                ))
            ));
            for l in &c.labels {
                s.push_str(&format!(
                    "| {} | {:.4} | {:.4} | {:+.1}% | {:.4} | {:.4} | {:.1}% | {:.1}% |\n",
                    l.label,
                    l.parent.mae,
                    l.finetuned.mae,
                    100.0 * (l.finetuned.mae / l.parent.mae - 1.0),
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

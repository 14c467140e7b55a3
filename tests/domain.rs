//! `TrainingDomain::fit` and `widen` on the real dr10 test spectra: widening
//! the domain of some training rows by that of others must give the domain
//! of all of them, as `finetune` relies on (its parent's domain widened by
//! the new set's is what the fine-tuned model has seen).

mod common;

use common::real_dataset;
use spectrain::ensemble::TrainingDomain;

#[test]
fn widening_by_other_rows_is_fitting_on_all_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = spectrain::Dataset::read(&real_dataset(tmp.path())).unwrap();
    let l = data.label_names.len();
    let n = data.len();
    assert!(n >= 6 && l == 3, "{n} rows, {l} labels");
    let inputs = Some((&data.inputs[..], data.input_len()));
    let fit = |rows: &[usize]| TrainingDomain::fit(&data.labels, l, &data.snrg, inputs, rows);

    // Interleaved halves, so each covers part of the other's ranges.
    let a: Vec<usize> = (0..n).step_by(2).collect();
    let b: Vec<usize> = (1..n).step_by(2).collect();
    let all: Vec<usize> = (0..n).collect();
    let mut widened = fit(&a);
    assert_ne!(
        widened,
        fit(&all),
        "the halves must differ for this test to mean anything"
    );
    widened.widen(&fit(&b));
    assert_eq!(widened, fit(&all));

    // Widening is symmetric in what it covers.
    let mut other_way = fit(&b);
    other_way.widen(&fit(&a));
    assert_eq!(other_way, widened);

    // No envelope on either side (catalog features): none after widening;
    // a domain without SNR(g) takes the other's.
    let no_env = |rows: &[usize]| TrainingDomain::fit(&data.labels, l, &data.snrg, None, rows);
    let mut d = no_env(&a);
    d.snrg_range = None;
    d.widen(&fit(&b));
    assert!(d.input_envelope.is_none());
    assert_eq!(d.snrg_range, fit(&b).snrg_range);
    assert_eq!(d.label_ranges, fit(&all).label_ranges);
}

//! The cosine learning-rate schedule against PyTorch's LinearLR warm-up and
//! CosineAnnealingLR (tests/fixtures/lr_schedule_golden.json, made by
//! scripts/make_schedule_golden.py).

mod common;

use spectrain::ensemble::LrSchedule;

#[test]
fn cosine_with_warm_up_matches_pytorch_step_by_step() {
    let golden = common::fixture("lr_schedule_golden.json");
    let cases = golden["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let peak = case["peak"].as_f64().unwrap();
        let total = case["total"].as_u64().unwrap() as usize;
        let warmup = case["warmup"].as_u64().unwrap() as usize;
        let want = common::floats(&case["lr"]);
        assert_eq!(want.len(), total);
        let got: Vec<f64> = (0..total)
            .map(|step| LrSchedule::Cosine.lr(peak, step, total, warmup))
            .collect();
        common::assert_close(
            &format!("peak {peak}, {total} steps, {warmup} warm-up"),
            &got,
            &want,
            1e-12,
        );
        // The constant schedule is the peak throughout.
        assert!((0..total).all(|s| LrSchedule::Constant.lr(peak, s, total, warmup) == peak));
    }
}

//! Helpers shared by the integration tests: fixture loading and comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A golden fixture from `tests/fixtures/`, made by `scripts/make_golden.py`.
pub fn fixture(name: &str) -> Value {
    let path = repo().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn path_of(v: &Value) -> PathBuf {
    repo().join(v["path"].as_str().unwrap())
}

/// Asserts `|a - b| <= tol` element-wise, naming the first offending index.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0.0), |(bi, bd), (i, d)| {
            if d > bd || d.is_nan() {
                (i, d)
            } else {
                (bi, bd)
            }
        });
    assert!(
        d <= tol,
        "{what}: index {i}: got {} want {} (|diff| {d:e} > {tol:e})",
        got[i],
        want[i]
    );
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

//! `spectrain prepare` end to end on real files mixed with broken ones: every
//! input ends up either in the dataset or in the reject list with a reason.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use common::*;
use spectrain::Dataset;

/// `spectrain -q prepare` of `spectra` with the dr10 test labels into `out`.
fn prepare_cmd(spectra: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = spectrain();
    c.args(["-q", "prepare", "--spectra"])
        .arg(spectra)
        .arg("--labels")
        .arg(repo().join("tests/data/dr10/labels.csv"))
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// Links every file of `from` into `to` (symlinks, as users do with survey trees).
fn link_all(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn read_rejects(path: &Path) -> BTreeMap<String, String> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["file", "reason", "detail"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert!(!rec[2].is_empty(), "every reject has a detail");
            (file_name(Path::new(&rec[0])), rec[1].to_string())
        })
        .collect()
}

#[test]
fn every_input_is_kept_or_rejected_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let spectra = tmp.path().join("spectra");
    // Nested directories: dr10 at the top, broken and layouts below.
    link_all(&repo().join("tests/data/dr10"), &spectra);
    link_all(&repo().join("tests/data/broken"), &spectra.join("broken"));
    link_all(
        &repo().join("tests/data/layouts"),
        &spectra.join("more/layouts"),
    );
    std::fs::remove_file(spectra.join("labels.csv")).unwrap();
    let out = tmp.path().join("out/data.h5");

    assert!(prepare_cmd(&spectra, &out, &[]).status().unwrap().success());

    // What the independent pipeline keeps, and which files have label rows.
    let golden = fixture("preprocess_golden.json");
    let golden: HashMap<String, &serde_json::Value> = golden["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (file_name(&path_of(f)), f))
        .collect();
    let labelled: Vec<String> = csv::Reader::from_path(repo().join("tests/data/dr10/labels.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();

    let data = Dataset::read(&out).unwrap();
    let rejects = read_rejects(&out.with_file_name("data.rejects.csv"));
    let inputs = spectrain::fits::find_spectra(&spectra).unwrap();
    assert_eq!(
        data.len() + rejects.len(),
        inputs.len(),
        "nothing lost, nothing doubled"
    );

    // Broken files: one named reason each.
    for (name, reason) in BROKEN {
        assert_eq!(
            rejects.get(name).map(String::as_str),
            Some(reason),
            "{name}"
        );
    }
    // Real files: kept exactly when the reference keeps them and a label row exists.
    for input in &inputs {
        let name = file_name(input);
        let Some(g) = golden.get(&name) else { continue };
        let ok = g["status"] == "ok";
        let has_label = labelled.contains(&name);
        match (ok, has_label) {
            (false, _) => assert_eq!(rejects[&name], g["status"].as_str().unwrap(), "{name}"),
            (true, false) => assert_eq!(rejects[&name], "no-label", "{name}"),
            (true, true) => {
                let i = data
                    .files
                    .iter()
                    .position(|f| f.ends_with(&name))
                    .unwrap_or_else(|| panic!("{name} kept"));
                let want: Vec<f32> = floats(&g["output"]).iter().map(|&v| v as f32).collect();
                let got = data.input(i);
                let max = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(max <= 1e-6, "{name}: max |diff| {max}");
            }
        }
    }
    // Labels travel with their spectra, in the requested order.
    assert_eq!(data.label_names, ["teff", "logg", "feh"]);
    let teff: Vec<f32> = data.labels.chunks(3).map(|r| r[0]).collect();
    assert!(
        teff.iter().all(|t| (3000.0..20000.0).contains(t)),
        "{teff:?}"
    );
    assert_eq!(data.input_shape, [64, 64]);
    assert_eq!(data.preprocess, spectrain::PreprocessConfig::default());
}

#[test]
fn a_missing_label_column_is_an_error_naming_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("data.h5");
    let output = prepare_cmd(
        &repo().join("tests/data/dr10"),
        &out,
        &["--columns", "teff,mass"],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'mass'"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial output"
    );
}

#[test]
fn join_by_file_name_finds_the_same_stars() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |id: &str| {
        let out = tmp.path().join(format!("{id}.h5"));
        let ok = prepare_cmd(&repo().join("tests/data/dr10"), &out, &["--id", id]).status();
        assert!(ok.unwrap().success());
        Dataset::read(&out).unwrap()
    };
    let (by_obsid, by_file) = (run("obsid"), run("file"));
    assert!(by_obsid.len() >= 8);
    assert_eq!(by_obsid.ids, by_file.ids);
    assert_eq!(by_obsid.labels, by_file.labels);
}

#[test]
fn inspect_reports_layout_and_outcome() {
    let layouts = repo().join("tests/data/layouts");
    let output = spectrain()
        .args(["inspect", "--json"])
        .arg(layouts.join("spec-55862-B6212_sp06-003.fits"))
        .arg(repo().join("tests/data/broken/med-58646-TD192102N424113K01_sp12-076.fits.gz"))
        .output()
        .unwrap();
    // Exit code 2: one of the files could not be read.
    assert_eq!(output.status.code(), Some(2));
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["layout"], "image-no-wavelength");
    assert_eq!(lines[0]["meta"]["obsid"], serde_json::Value::Null);
    assert_eq!(lines[0]["outcome"], "kept");
    assert_eq!(lines[1]["outcome"], "medium-resolution");
}

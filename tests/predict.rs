//! `spectrain predict` and `merge` end to end: one row per input, whatever the
//! input; resume and shards give the single-run catalog; FITS output with units.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// All test files, plus a duplicate copy and a symlink, under one directory.
fn survey(dir: &Path) -> PathBuf {
    let root = dir.join("survey");
    for sub in ["dr10", "broken", "layouts"] {
        let to = root.join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(repo().join("tests/data").join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let one = root.join("dr10/spec-59670-HD160623N052445B03_sp03-206.fits.gz");
    std::fs::copy(&one, root.join("copy-of-206.fits.gz")).unwrap();
    std::os::unix::fs::symlink(&one, root.join("link-to-206.fits.gz")).unwrap();
    root
}

fn run_predict(model: &Path, spectra: &Path, out: &Path, extra: &[&str]) {
    let status = spectrain()
        .args(["-q", "predict", "--backend", "cpu", "--model"])
        .arg(model)
        .arg("--spectra")
        .arg(spectra)
        .arg("--out")
        .arg(out)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A CSV catalog whose cells are read by column name, so a column added or
/// moved does not silently change what a test looks at.
struct Catalog {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Catalog {
    fn read(path: &Path) -> Self {
        let mut r = csv::Reader::from_path(path).unwrap();
        let header = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        Self { header, rows }
    }

    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    /// The cell of `row` in column `name`.
    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.column(name)]
    }

    /// The row whose `file` is `name`.
    fn row(&self, name: &str) -> &[String] {
        let file = self.column("file");
        self.rows
            .iter()
            .find(|r| r[file] == name)
            .unwrap_or_else(|| panic!("no row for {name}"))
    }
}

#[test]
fn every_input_gets_one_row_and_resume_and_shards_reproduce_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(tmp.path());
    let spectra = survey(tmp.path());
    let single = tmp.path().join("single.csv");
    run_predict(&model, &spectra, &single, &[]);

    let inputs = spectrain::fits::find_spectra(&spectra).unwrap();
    let table = Catalog::read(&single);
    assert_eq!(table.rows.len(), inputs.len(), "one row per input file");
    for (name, reason) in BROKEN {
        let r = table.row(&format!("broken/{name}"));
        assert_eq!(table.get(r, "status"), "rejected", "{name}");
        let why = table.get(r, "reason");
        assert!(why.starts_with(reason), "{name}: {why}");
    }
    // Duplicates and symlinks are inputs too, and predict the same as the original.
    let original = table.row("dr10/spec-59670-HD160623N052445B03_sp03-206.fits.gz");
    for name in ["copy-of-206.fits.gz", "link-to-206.fits.gz"] {
        let r = table.row(name);
        assert_eq!(table.get(r, "status"), "ok");
        for column in table.header.iter().filter(|c| *c != "file") {
            assert_eq!(
                table.get(r, column),
                table.get(original, column),
                "{name}: {column}"
            );
        }
    }
    let ok: Vec<&Vec<String>> = table
        .rows
        .iter()
        .filter(|r| table.get(r, "status") == "ok")
        .collect();
    assert!(ok.len() >= 15);
    for r in &ok {
        let teff: f64 = table.get(r, "teff").parse().unwrap();
        let std: f64 = table.get(r, "teff_std").parse().unwrap();
        assert!(teff.is_finite() && std >= 0.0, "{r:?}");
    }

    // Resume: an interrupted run left the header, some rows and a torn line.
    let resumed = tmp.path().join("resumed.csv");
    let text = std::fs::read_to_string(&single).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut partial = lines[..12].join("\n");
    partial.push('\n');
    partial.push_str(&lines[12][..lines[12].len() / 2]);
    let partial_path = spectrain::predict::partial_path(&resumed);
    std::fs::write(&partial_path, partial).unwrap();
    // The interrupted run also left the identity of what it was making.
    std::fs::copy(
        spectrain::predict::identity_path(&single),
        spectrain::predict::identity_path(&partial_path),
    )
    .unwrap();
    // Without --resume the partial file is not silently overwritten.
    let refused = spectrain()
        .args(["-q", "predict", "--backend", "cpu", "--model"])
        .arg(&model)
        .arg("--spectra")
        .arg(&spectra)
        .arg("--out")
        .arg(&resumed)
        .status()
        .unwrap();
    assert!(!refused.success());
    run_predict(&model, &spectra, &resumed, &["--resume"]);
    assert_eq!(
        std::fs::read_to_string(&resumed).unwrap(),
        text,
        "resume = single run"
    );

    // Shards: disjoint, complete, and merge back to the single-run catalog.
    let shards: Vec<PathBuf> = (1..=3)
        .map(|k| {
            let out = tmp.path().join(format!("shard{k}.csv"));
            run_predict(&model, &spectra, &out, &["--shard", &format!("{k}/3")]);
            out
        })
        .collect();
    let merged = tmp.path().join("merged.csv");
    let status = spectrain()
        .args(["merge", "--out"])
        .arg(&merged)
        .arg("--spectra")
        .arg(&spectra)
        .args(&shards)
        .status()
        .unwrap();
    assert!(status.success(), "no file missing or duplicated");
    assert_eq!(
        std::fs::read_to_string(&merged).unwrap(),
        text,
        "merged shards = single run"
    );

    // A missing shard is reported (exit 3), not silently merged.
    let status = spectrain()
        .args(["merge", "--out"])
        .arg(tmp.path().join("partial-merge.csv"))
        .arg("--spectra")
        .arg(&spectra)
        .args(&shards[..2])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn fits_catalog_has_the_columns_and_units() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(tmp.path());
    let out = tmp.path().join("catalog.fits");
    run_predict(
        &model,
        &repo().join("tests/data/dr10"),
        &out,
        &["--members-out"],
    );
    let mut f = fitsio::FitsFile::open(&out).unwrap();
    let hdu = f.hdu("CATALOG").unwrap();
    let names: Vec<String> = match &hdu.info {
        fitsio::hdu::HduInfo::TableInfo {
            column_descriptions,
            ..
        } => column_descriptions.iter().map(|c| c.name.clone()).collect(),
        _ => panic!("not a table"),
    };
    for c in [
        "file",
        "obsid",
        "status",
        "teff",
        "teff_std",
        "logg",
        "feh_std",
        "flag_domain",
        "teff_m01",
    ] {
        assert!(names.contains(&c.to_string()), "{c} in {names:?}");
    }
    let mut unit = |name: &str| {
        let i = names.iter().position(|n| n == name).unwrap() + 1;
        hdu.read_key::<String>(&mut f, &format!("TUNIT{i}"))
            .unwrap()
    };
    assert_eq!(unit("teff"), "K");
    assert_eq!(unit("teff_std"), "K");
    assert_eq!(unit("ra"), "deg");
    let status: Vec<String> = hdu.read_col(&mut f, "status").unwrap();
    assert_eq!(status.len(), 12);
    let teff: Vec<f64> = hdu.read_col(&mut f, "teff").unwrap();
    let ok = status.iter().filter(|s| s.trim() == "ok").count();
    assert_eq!(teff.iter().filter(|t| t.is_finite()).count(), ok);
}

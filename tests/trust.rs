//! Issue 10, driven as a user (or a hostile tester) would: the `spectrain`
//! binary as a process. Each test reproduces a way the tool used to destroy,
//! mix or misreport data, and checks it now ends in a clear message and a
//! non-zero exit (nothing else touched), or in a correct result.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const SHIPPED: &str = "models/dr10-teff-logg-feh";

fn run(args: &[&std::ffi::OsStr]) -> Output {
    spectrain().args(args).output().unwrap()
}

macro_rules! cli {
    ($($a:expr),* $(,)?) => { run(&[$(std::ffi::OsStr::new(&$a)),*]) };
}

/// `spectrain -q predict --model M --spectra S --out O EXTRA... --backend cpu`.
fn predict(
    model: impl AsRef<std::ffi::OsStr>,
    spectra: impl AsRef<std::ffi::OsStr>,
    out: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> Output {
    spectrain()
        .args(["-q", "predict", "--model"])
        .arg(model)
        .arg("--spectra")
        .arg(spectra)
        .arg("--out")
        .arg(out)
        .args(extra)
        .args(["--backend", "cpu"])
        .output()
        .unwrap()
}

/// `spectrain -q train --data D --out O --config C EXTRA... --backend cpu`.
fn train(
    data: impl AsRef<std::ffi::OsStr>,
    out: impl AsRef<std::ffi::OsStr>,
    config: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> Output {
    spectrain()
        .args(["-q", "train", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--config")
        .arg(config)
        .args(extra)
        .args(["--backend", "cpu"])
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A refusal: non-zero exit, no panic, and a message containing `needle`.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a refusal, got success: {err}"
    );
    assert!(!err.contains("panicked"), "a panic: {err}");
    assert!(
        err.contains(needle),
        "expected '{needle}' in the message: {err}"
    );
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The shipped model copied into `dir` (so tests can tamper with it).
fn shipped_copy(dir: &Path) -> PathBuf {
    let to = dir.join("shipped");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(repo().join(SHIPPED)).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    to
}

fn dr10() -> PathBuf {
    repo().join("tests/data/dr10")
}

/// A `--config` with the tiny network: trains in a moment.
fn tiny_config(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        "[model]\nstem_channels = 8\ngrowth = 4\nbottleneck = 2\nblock_layers = [1, 1]\n\
         integration = 4\nhidden = 16\nhead_dropout = 0.0\n\
         [training]\nmembers = 1\nepochs = 1\nbatch = 4\n",
    )
    .unwrap();
    path
}

fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn catalog(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (h, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

// 1, 2, 3: --force replaces only model directories; no output over an input.
#[test]
fn force_never_destroys_what_is_not_a_model_or_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    // 1. An ordinary folder with a thesis in it.
    let folder = tmp.path().join("thesis");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("thesis.tex"), "years of work").unwrap();
    let before = tree_digest(&folder);
    let o = cli!(
        "-q",
        "train",
        "--data",
        data,
        "--out",
        folder,
        "--force",
        "--config",
        config,
        "--backend",
        "cpu"
    );
    assert_refused(&o, "not a spectrain model directory");
    assert_eq!(tree_digest(&folder), before, "nothing touched");

    // 2. --out contains the input dataset.
    let x = tmp.path().join("X");
    std::fs::create_dir_all(&x).unwrap();
    std::fs::copy(&data, x.join("my.h5")).unwrap();
    let before = tree_digest(&x);
    let o = cli!(
        "-q",
        "train",
        "--data",
        x.join("my.h5"),
        "--out",
        x,
        "--force",
        "--config",
        config,
        "--backend",
        "cpu"
    );
    assert_refused(&o, "contains the dataset");
    assert_eq!(tree_digest(&x), before);

    // A real model directory is replaced, but a file spectrain did not write stays.
    let model = tmp.path().join("model");
    assert_ok(&train(&data, &model, &config, &[]));
    std::fs::write(model.join("notes.txt"), "mine").unwrap();
    assert_ok(&cli!(
        "-q",
        "train",
        "--data",
        data,
        "--out",
        model,
        "--force",
        "--config",
        config,
        "--backend",
        "cpu"
    ));
    assert_eq!(
        std::fs::read_to_string(model.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(model.join("member-00.bpk").exists());

    // 3. finetune --out equal to --model.
    let before = tree_digest(&model);
    let o = cli!(
        "-q",
        "finetune",
        "--model",
        model,
        "--data",
        data,
        "--out",
        model,
        "--force",
        "--steps",
        "1",
        "--backend",
        "cpu"
    );
    assert_refused(&o, "is the parent model");
    assert_eq!(tree_digest(&model), before, "parent untouched");
    // Also through another spelling of the same path.
    let spelt = tmp.path().join("X/../model");
    let o = cli!(
        "-q",
        "finetune",
        "--model",
        model,
        "--data",
        data,
        "--out",
        spelt,
        "--force",
        "--steps",
        "1",
        "--backend",
        "cpu"
    );
    assert_refused(&o, "parent model");
}

// 4. Two runs on one catalog: the second is refused, naming the holder.
#[test]
fn a_catalog_being_written_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c.csv");
    // What a running predict holds (this test process plays the first run).
    let lock_path = tmp.path().join("c.csv.partial.lock");
    let _held =
        spectrain::lock::FileLock::acquire(&lock_path, spectrain::lock::LockMode::Exclusive)
            .unwrap();
    let o = predict(repo().join(SHIPPED), dr10(), &out, &["--resume"]);
    assert_refused(&o, &format!("pid {}", std::process::id()));
    assert!(!out.exists());
}

// 5. Resume and merge refuse what another model, spectra set or shard made.
#[test]
fn resume_and_merge_never_mix_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = repo().join(SHIPPED);
    let full = tmp.path().join("full.csv");
    assert_ok(&predict(&model, dr10(), &full, &[]));
    // An interrupted run of `full` (its header and identity), resumed over other spectra.
    let other = tmp.path().join("other-spectra");
    std::fs::create_dir_all(&other).unwrap();
    for e in std::fs::read_dir(dr10()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), other.join(e.file_name())).unwrap();
    }
    let out = tmp.path().join("resumed.csv");
    let partial = spectrain::predict::partial_path(&out);
    let text = std::fs::read_to_string(&full).unwrap();
    std::fs::write(
        &partial,
        text.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    std::fs::copy(
        spectrain::predict::identity_path(&full),
        spectrain::predict::identity_path(&partial),
    )
    .unwrap();
    let o = predict(&model, &other, &out, &["--resume"]);
    assert_refused(&o, "spectra directory");
    let o = predict(&model, dr10(), &out, &["--resume", "--shard", "1/2"]);
    assert_refused(&o, "shard");
    // Another model: the tiny one.
    let (_, tiny) = tiny_model(tmp.path());
    let o = predict(&tiny, dr10(), &out, &["--resume"]);
    assert_refused(&o, "differently");
    // The matching run resumes to the single-run catalog, and counts the whole catalog.
    let o = cli!(
        "predict",
        "--model",
        model,
        "--spectra",
        dr10(),
        "--out",
        out,
        "--resume",
        "--backend",
        "cpu"
    );
    assert_ok(&o);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let (h, rows) = catalog(&full);
    let ok = rows.iter().filter(|r| r[col(&h, "status")] == "ok").count();
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = said
        .lines()
        .find(|l| l.trim_start().starts_with("ok "))
        .unwrap();
    let counted: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(counted, ok, "the summary counts the whole catalog: {said}");
    // Resuming the finished run is a no-op that says so.
    let before = std::fs::read(&out).unwrap();
    let o = cli!(
        "predict",
        "--model",
        model,
        "--spectra",
        dr10(),
        "--out",
        out,
        "--resume",
        "--backend",
        "cpu"
    );
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already complete"));
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // merge: shards of different spectra directories are refused.
    let s1 = tmp.path().join("s1.csv");
    let s2 = tmp.path().join("s2.csv");
    assert_ok(&predict(&model, dr10(), &s1, &["--shard", "1/2"]));
    assert_ok(&predict(&model, &other, &s2, &["--shard", "2/2"]));
    let merged = tmp.path().join("merged.csv");
    let o = cli!("merge", "--out", merged, s1, s2);
    assert_refused(&o, "spectra directory");
    assert!(!merged.exists());
    // The same shard twice is refused too.
    let o = cli!("merge", "--out", merged, s1, s1);
    assert_refused(&o, "given twice");
}

// 6. A diverging training stops with an error; nothing is published.
#[test]
fn divergence_is_an_error_not_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let config = tiny_config(tmp.path());
    let out = tmp.path().join("model");
    let o = train(&data, &out, &config, &["--lr", "1e10", "--epochs", "3"]);
    assert_refused(&o, "diverged");
    assert!(!out.join("member-00.bpk").exists(), "no weights published");
    assert!(!out.join("metrics.json").exists());
}

// 7, 8. Corrupt weights and an edited spec are errors naming the file.
#[test]
fn tampered_models_are_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let model = shipped_copy(tmp.path());
    let out = tmp.path().join("c.csv");
    // 7. 4 KB flipped in the middle of a member's weights.
    let w = model.join("member-01.bpk");
    let mut bytes = std::fs::read(&w).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b ^= 0xff;
    }
    std::fs::write(&w, bytes).unwrap();
    let o = predict(&model, dr10(), &out, &[]);
    assert_refused(&o, "member-01.bpk");
    assert_refused(&o, "SHA-256");
    assert!(!out.exists() && !spectrain::predict::partial_path(&out).exists());

    // 8. Four label names for a three-output network.
    let model = tmp.path().join("edited");
    std::fs::rename(tmp.path().join("shipped"), &model).unwrap();
    std::fs::copy(
        repo().join(SHIPPED).join("member-01.bpk"),
        model.join("member-01.bpk"),
    )
    .unwrap();
    let spec_path = model.join("spec.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["label_names"]
        .as_array_mut()
        .unwrap()
        .push("mass".into());
    std::fs::write(&spec_path, serde_json::to_string(&spec).unwrap()).unwrap();
    let o = predict(&model, dr10(), &out, &[]);
    assert_refused(&o, "4 label names for a network with 3 outputs");
    // A model whose checksum file was removed is refused too, and says how to restore it.
    spec["label_names"].as_array_mut().unwrap().pop();
    std::fs::write(&spec_path, serde_json::to_string(&spec).unwrap()).unwrap();
    std::fs::remove_file(model.join("member-02.sha256")).unwrap();
    let o = predict(&model, dr10(), &out, &[]);
    assert_refused(&o, "sha256sum member-02.bpk");
}

// 9. Degenerate options and inputs: one line each, no panic, nothing left behind.
#[test]
fn degenerate_options_and_inputs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = repo().join(SHIPPED);
    let out = tmp.path().join("c.csv");
    let o = cli!(
        "predict",
        "--model",
        model,
        "--spectra",
        dr10(),
        "--out",
        out,
        "--batch",
        "0"
    );
    assert_refused(&o, "--batch");
    assert!(!spectrain::predict::partial_path(&out).exists());
    // ... and the rerun is not blocked.
    assert_ok(&predict(&model, dr10(), &out, &[]));
    let data = real_dataset(tmp.path());
    for args in [
        vec!["evaluate", "--batch", "0"],
        vec!["train", "--epochs", "0"],
        vec!["train", "--lr", "-1"],
        vec!["train", "--val-fraction", "1.5"],
        vec!["finetune", "--steps", "0"],
        vec!["baseline", "--trees", "0"],
        vec!["bench", "--seconds", "0"],
        vec!["-j", "0", "inspect"],
    ] {
        let o = run(&args.iter().map(std::ffi::OsStr::new).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
    // A one-row dataset for finetune and baseline.
    let real = spectrain::Dataset::read(&data).unwrap();
    let mut one = spectrain::Dataset::new(real.label_names.clone(), real.preprocess.clone());
    one.push(spectrain::dataset::Sample {
        id: real.ids[0].clone(),
        file: real.files[0].clone(),
        input: real.input(0).to_vec(),
        labels: real.label_row(0).to_vec(),
        snrg: real.snrg[0],
        ra: real.ra[0],
        dec: real.dec[0],
        z: real.z[0],
    });
    let one_path = tmp.path().join("one.h5");
    one.write(&one_path).unwrap();
    let o = cli!(
        "-q",
        "finetune",
        "--model",
        model,
        "--data",
        one_path,
        "--out",
        tmp.path().join("ft"),
        "--backend",
        "cpu"
    );
    assert_refused(&o, "1 rows");
    let o = cli!(
        "-q",
        "baseline",
        "--data",
        one_path,
        "--method",
        "linear",
        "--out",
        tmp.path().join("bl")
    );
    assert_refused(&o, "1 rows");
    // train --resume while another run holds the directory.
    let config = tiny_config(tmp.path());
    let m = tmp.path().join("m");
    assert_ok(&train(&data, &m, &config, &[]));
    let _held = spectrain::lock::FileLock::acquire(
        &m.join("train.lock"),
        spectrain::lock::LockMode::Exclusive,
    )
    .unwrap();
    let o = train(&data, &m, &config, &["--resume"]);
    assert_refused(&o, "in use by another run");
}

// 10, 11, 13, 14. Outputs are checked before any work.
#[test]
fn outputs_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let model = repo().join(SHIPPED);
    // 10. An existing directory as the catalog.
    let dir = tmp.path().join("somedir");
    std::fs::create_dir_all(&dir).unwrap();
    let o = predict(&model, dr10(), &dir, &[]);
    assert_refused(&o, &format!("{} is a directory", dir.display()));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // 14. The format follows the extension, or the command refuses.
    let o = predict(&model, dr10(), tmp.path().join("c.txt"), &[]);
    assert_refused(&o, "output format");
    let gz = tmp.path().join("c.fits.gz");
    assert_ok(&predict(&model, dr10(), &gz, &[]));
    let bytes = std::fs::read(&gz).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip data");
    let mut f = fitsio::FitsFile::open(&gz).unwrap();
    let hdu = f.hdu("CATALOG").unwrap();
    let status: Vec<String> = hdu.read_col(&mut f, "status").unwrap();
    assert_eq!(status.len(), 12);
    // 13. An existing catalog is not overwritten without --force.
    let csv = tmp.path().join("c.csv");
    assert_ok(&predict(&model, dr10(), &csv, &[]));
    std::fs::write(&csv, "precious").unwrap();
    let o = predict(&model, dr10(), &csv, &[]);
    assert_refused(&o, "--force");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "precious");
    assert_ok(&predict(&model, dr10(), &csv, &["--force"]));
    assert_ne!(std::fs::read_to_string(&csv).unwrap(), "precious");
    let h5 = tmp.path().join("d.h5");
    let labels = dr10().join("labels.csv");
    assert_ok(&cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        h5
    ));
    let o = cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        h5
    );
    assert_refused(&o, "--force");
    assert_ok(&cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        h5,
        "--force"
    ));
    let o = cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        tmp.path().join("d.csv")
    );
    assert_refused(&o, ".h5");
    // 11. Nothing to do is an error, not an empty success.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = predict(&model, &empty, tmp.path().join("e.csv"), &[]);
    assert_refused(&o, "no .fits");
    assert!(!tmp.path().join("e.csv").exists());
    let nolabel = tmp.path().join("nolabel.csv");
    std::fs::write(&nolabel, "obsid,teff,logg,feh\n1,5000,4.5,0.0\n").unwrap();
    let o = cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        nolabel,
        "--out",
        tmp.path().join("n.h5")
    );
    assert_refused(&o, "--id file");
    assert!(!tmp.path().join("n.h5").exists());
    assert!(
        tmp.path().join("n.rejects.csv").exists(),
        "the reasons are kept"
    );
    let zero = spectrain::Dataset::new(
        vec!["teff".into(), "logg".into(), "feh".into()],
        spectrain::PreprocessConfig::default(),
    );
    let zero_path = tmp.path().join("zero.h5");
    zero.write(&zero_path).unwrap();
    let o = cli!(
        "-q",
        "evaluate",
        "--model",
        model,
        "--data",
        zero_path,
        "--out",
        tmp.path().join("r"),
        "--backend",
        "cpu"
    );
    assert_refused(&o, "no rows");
}

// 12. File names that are not UTF-8 keep distinct, reversible names.
#[test]
fn file_names_that_are_not_utf8_stay_distinct() {
    let tmp = tempfile::tempdir().unwrap();
    let spectra = tmp.path().join("s");
    std::fs::create_dir_all(&spectra).unwrap();
    let src = dr10().join("spec-59522-GACII052N48B2_sp02-118.fits.gz");
    let names: Vec<PathBuf> = [
        &b"spec-\xff.fits.gz"[..],
        b"spec-\xfe.fits.gz",
        b"spec-\xe9.fits.gz",
    ]
    .iter()
    .map(|b| spectra.join(PathBuf::from(OsString::from_vec(b.to_vec()))))
    .collect();
    for n in &names {
        std::fs::copy(&src, n).unwrap();
    }
    let out = tmp.path().join("c.csv");
    let model = repo().join(SHIPPED);
    assert_ok(&predict(&model, &spectra, &out, &[]));
    let (h, rows) = catalog(&out);
    let mut files: Vec<String> = rows.iter().map(|r| r[col(&h, "file")].clone()).collect();
    files.sort();
    assert_eq!(
        files,
        vec!["spec-%E9.fits.gz", "spec-%FE.fits.gz", "spec-%FF.fits.gz"]
    );
    for f in &files {
        assert!(
            spectra
                .join(spectrain::pathtext::path_from_text(f))
                .exists(),
            "{f}"
        );
    }
    // Sharded and merged, all three survive.
    let shards: Vec<PathBuf> = (1..=2)
        .map(|k| {
            let s = tmp.path().join(format!("s{k}.csv"));
            assert_ok(&cli!(
                "-q",
                "predict",
                "--model",
                model,
                "--spectra",
                spectra,
                "--out",
                s,
                "--shard",
                format!("{k}/2"),
                "--backend",
                "cpu"
            ));
            s
        })
        .collect();
    let merged = tmp.path().join("m.csv");
    assert_ok(&cli!(
        "merge",
        "--out",
        merged,
        "--spectra",
        spectra,
        shards[0],
        shards[1]
    ));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&out).unwrap()
    );
}

// 15. One cell and header rule for every CSV.
#[test]
fn label_catalogs_follow_the_one_csv_rule() {
    let tmp = tempfile::tempdir().unwrap();
    // Rows of spectra that preprocessing keeps, so labels decide their fate.
    let kept = spectrain::Dataset::read(&real_dataset(tmp.path()))
        .unwrap()
        .ids;
    let text = std::fs::read_to_string(dr10().join("labels.csv")).unwrap();
    let mut lines = text.lines();
    // Upper-case headers, an unused column with a Latin-1 byte, and NA / - cells.
    let header = lines.next().unwrap().to_uppercase();
    let mut bytes = format!("{header},NOTE\n").into_bytes();
    let h: Vec<&str> = header.split(',').collect();
    let obsid = h.iter().position(|c| *c == "OBSID").unwrap();
    let teff = h.iter().position(|c| *c == "TEFF").unwrap();
    let mut i = 0;
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        if kept.contains(&cells[obsid]) {
            i += 1;
            match i {
                1 => cells[teff] = "NA".into(),
                2 => cells[teff] = "-".into(),
                3 => cells[teff] = "1e39".into(),
                _ => {}
            }
        }
        bytes.extend(cells.join(",").into_bytes());
        bytes.extend(b",caf\xe9\n");
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, bytes).unwrap();
    let out = tmp.path().join("d.h5");
    let o = cli!(
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        out
    );
    assert_ok(&o);
    let rejects = std::fs::read_to_string(tmp.path().join("d.rejects.csv")).unwrap();
    assert_eq!(rejects.matches(",missing-label,").count(), 2, "{rejects}");
    assert_eq!(rejects.matches(",not-a-number,").count(), 1, "{rejects}");
    assert!(rejects.contains("1e39"));
}

// 16, 18. Extreme catalog values: rejected when not finite in f32, flagged when
// far outside the training range, never `ok` with a NaN; floats written so
// every reader parses them.
#[test]
fn extreme_table_values_are_rejected_flagged_or_failed_never_ok_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let table = repo().join("assets/tables/dh_postzams.csv");
    let data = tmp.path().join("dh.h5");
    assert_ok(&cli!(
        "-q",
        "prepare-table",
        "--table",
        table,
        "--features",
        "log_teff,log_l",
        "--labels",
        "log_mass",
        "--id",
        "id",
        "--out",
        data
    ));
    let model = tmp.path().join("mlp");
    assert_ok(&cli!(
        "-q",
        "train",
        "--arch",
        "mlp",
        "--hidden",
        "16",
        "--data",
        data,
        "--out",
        model,
        "--members",
        "2",
        "--epochs",
        "2",
        "--backend",
        "cpu"
    ));
    let input = tmp.path().join("in.csv");
    std::fs::write(
        &input,
        "id,log_teff,log_l\na,3.76,0.1\nb,1e39,0.1\nc,1e300,0.1\nd,-1e300,0.1\ne,3.76,3.4e38\nf,1e30,0.1\n",
    )
    .unwrap();
    let out = tmp.path().join("out.csv");
    assert_ok(&cli!(
        "-q",
        "predict",
        "--model",
        model,
        "--table",
        input,
        "--id",
        "id",
        "--out",
        out,
        "--backend",
        "cpu"
    ));
    let (h, rows) = catalog(&out);
    let (status, reason, mass, domain) = (
        col(&h, "status"),
        col(&h, "reason"),
        col(&h, "log_mass"),
        col(&h, "flag_domain"),
    );
    assert_eq!(rows[0][status], "ok");
    for r in &rows[1..4] {
        assert_eq!(r[status], "rejected", "{r:?}");
        assert!(r[reason].starts_with("not-a-number"), "{r:?}");
    }
    for r in &rows {
        if r[status] == "ok" {
            let v: f64 = r[mass].parse().expect("a number every reader parses");
            assert!(v.is_finite(), "{r:?}");
            assert!(r[mass].len() < 26, "{r:?}");
        }
    }
    // 3.4e38 is finite in f32 but overflows the network: failed, or ok and finite.
    assert_ne!(rows[4][mass], "NaN");
    assert!(
        rows[4][status] == "failed" || rows[4][domain] == "1",
        "{:?}",
        rows[4]
    );
    // 1e30: far outside the training range, so flagged.
    assert_eq!(rows[5][domain], "1", "{:?}", rows[5]);
    // 14. A table model writes CSV only.
    let o = cli!(
        "-q",
        "predict",
        "--model",
        model,
        "--table",
        input,
        "--out",
        tmp.path().join("t.fits"),
        "--backend",
        "cpu"
    );
    assert_refused(&o, ".csv");
}

// 17. Provenance names the commit the binary was built from.
#[test]
fn provenance_records_the_build_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = real_dataset(tmp.path());
    let out = tmp.path().join("m");
    let config = tiny_config(tmp.path());
    assert_ok(&train(&data, &out, &config, &[]));
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
            .unwrap();
    let commit = p["git_commit"].as_str().unwrap();
    if repo().join(".git").exists() {
        let hex = commit.trim_end_matches("-dirty");
        assert_eq!(hex.len(), 40, "{commit}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{commit}");
    } else {
        assert!(commit.starts_with("unknown"), "{commit}");
    }
    // And the member's weights carry their checksum.
    let sum = std::fs::read_to_string(out.join("member-00.sha256")).unwrap();
    assert!(sum.ends_with("  member-00.bpk\n"), "{sum}");
}

// Cluster logs: plain progress lines, no colour; clear messages for foreign files.
#[test]
fn logs_without_a_terminal_are_plain_and_messages_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let o = spectrain()
        .env("SPECTRAIN_PROGRESS_SECONDS", "0")
        .args(["predict", "--backend", "cpu", "--model"])
        .arg(repo().join(SHIPPED))
        .arg("--spectra")
        .arg(dr10())
        .arg("--out")
        .arg(tmp.path().join("c.csv"))
        .output()
        .unwrap();
    assert_ok(&o);
    let err = stderr(&o);
    assert!(!err.contains('\x1b'), "no escape codes: {err:?}");
    assert!(err.contains("predict: 12/12 (100.0%)"), "{err}");
    assert!(err.contains("ETA"), "{err}");
    // A foreign HDF5 file is said to be one.
    let foreign = tmp.path().join("foreign.h5");
    hdf5::File::create(&foreign)
        .unwrap()
        .new_dataset::<f32>()
        .shape([3])
        .create("x")
        .unwrap();
    let o = cli!(
        "-q",
        "evaluate",
        "--model",
        repo().join(SHIPPED),
        "--data",
        foreign,
        "--out",
        tmp.path().join("r"),
        "--backend",
        "cpu"
    );
    assert_refused(&o, "not a spectrain dataset");
    // A label catalog without obsid suggests --id file.
    let labels = tmp.path().join("l.csv");
    std::fs::write(&labels, "file,teff,logg,feh\nx.fits,5000,4,0\n").unwrap();
    let o = cli!(
        "-q",
        "prepare",
        "--spectra",
        dr10(),
        "--labels",
        labels,
        "--out",
        tmp.path().join("d.h5")
    );
    assert_refused(&o, "--id file");
    // A cause is said once.
    let o = cli!(
        "-q",
        "evaluate",
        "--model",
        tmp.path().join("nope"),
        "--data",
        foreign,
        "--out",
        tmp.path().join("r2"),
        "--backend",
        "cpu"
    );
    assert_refused(&o, "No such file");
    assert_eq!(
        stderr(&o).matches("No such file").count(),
        1,
        "{}",
        stderr(&o)
    );
}

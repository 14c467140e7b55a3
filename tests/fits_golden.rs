//! Every LAMOST layout reads to the values astropy reads (tests/fixtures/fits_golden.json).

mod common;

use common::*;
use spectrain::fits::{read_spectrum, FitsError};
use spectrain::Layout;

#[test]
fn every_layout_matches_astropy() {
    let golden = fixture("fits_golden.json");
    let files = golden["files"].as_array().unwrap();
    assert!(files.len() >= 8, "fixture covers every layout");
    for f in files {
        let path = path_of(f);
        let name = file_name(&path);
        let s = read_spectrum(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.len() as u64,
            f["n"].as_u64().unwrap(),
            "{name}: pixel count"
        );
        let expected_layout = match f["wavelength_source"].as_str().unwrap() {
            "column" => Layout::CoaddTable,
            "row2" => Layout::Image,
            "coeff" => Layout::ImageNoWavelength,
            other => panic!("unknown source {other}"),
        };
        assert_eq!(s.layout, expected_layout, "{name}: layout");
        assert_eq!(s.meta.obsid, f["obsid"].as_i64(), "{name}: obsid");
        for (key, got) in [
            ("z", s.meta.z),
            ("snrg", s.meta.snrg),
            ("ra", s.meta.ra),
            ("dec", s.meta.dec),
        ] {
            assert_eq!(got, f[key].as_f64(), "{name}: {key}");
        }
        assert_eq!(
            s.meta.class.as_deref(),
            f["class"].as_str(),
            "{name}: class"
        );
        assert_eq!(
            s.meta.subclass.as_deref(),
            f["subclass"].as_str(),
            "{name}: subclass"
        );
        assert_eq!(
            s.meta.data_release.as_deref(),
            f["data_v"].as_str(),
            "{name}: DATA_V"
        );
        let pixels: Vec<usize> = f["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        let pick = |v: &[f64]| pixels.iter().map(|&i| v[i]).collect::<Vec<_>>();
        // f32 and f64 file values convert to f64 exactly: demand equality.
        assert_close(
            &format!("{name} flux"),
            &pick(&s.flux),
            &floats(&f["flux"]),
            0.0,
        );
        assert_close(
            &format!("{name} ivar"),
            &pick(&s.ivar),
            &floats(&f["ivar"]),
            0.0,
        );
        // DR1 wavelengths are computed; allow last-bit differences of pow().
        assert_close(
            &format!("{name} wavelength"),
            &pick(&s.wavelength),
            &floats(&f["wavelength"]),
            1e-9,
        );
    }
}

#[test]
fn gzip_and_plain_copies_read_identically() {
    let dir = repo().join("tests/data/layouts");
    let gz = read_spectrum(&dir.join("spec-59522-EG224840N075042B03_sp03-013.fits.gz")).unwrap();
    let plain = read_spectrum(&dir.join("spec-59522-EG224840N075042B03_sp03-013.fits")).unwrap();
    assert_eq!(gz.flux, plain.flux);
    assert_eq!(gz.wavelength, plain.wavelength);
    assert_eq!(gz.meta.obsid, plain.meta.obsid);
}

#[test]
fn f64_image_reads_like_its_f32_original() {
    let dir = repo().join("tests/data/layouts");
    let s = read_spectrum(&dir.join("spec-58575-HD103621N361936B01_sp03-003-f64.fits")).unwrap();
    assert_eq!(s.meta.bitpix, Some(-64));
    assert_eq!(s.layout, Layout::Image);
    let (lo, hi) = s.wavelength_range().unwrap();
    assert!(
        (3690.0..3710.0).contains(&lo) && (9000.0..9200.0).contains(&hi),
        "{lo} {hi}"
    );
}

#[test]
fn broken_files_give_typed_errors_naming_the_file() {
    let dir = repo().join("tests/data/broken");
    let cases = [
        ("empty.fits", "empty-file"),
        ("not-fits.fits", "unreadable"),
        ("truncated-half.fits", "unreadable"),
        ("truncated-60pct.fits.gz", "unreadable"),
        (
            "med-58646-TD192102N424113K01_sp12-076.fits.gz",
            "medium-resolution",
        ),
        ("wrong-shape-3rows.fits", "wrong-layout"),
    ];
    for (name, code) in cases {
        let path = dir.join(name);
        let err: FitsError = read_spectrum(&path).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert_eq!(err.path(), path.as_path());
        assert!(
            err.to_string().contains(name),
            "message names the file: {err}"
        );
    }
    // All-NaN flux is a readable file; preprocessing rejects it (see preprocess tests).
    let nan = read_spectrum(&dir.join("all-nan-flux.fits.gz")).unwrap();
    assert!(nan.flux.iter().all(|f| f.is_nan()));
}

//! Preprocessing against independent references: PyWavelets (Haar), scipy (median),
//! numpy (pseudo-continuum) and an astropy + PyWavelets pipeline (whole recipe).

mod common;

use common::*;
use spectrain::fits::read_spectrum;
use spectrain::preprocess::haar::{wavedec, HaarDenoiser};
use spectrain::preprocess::{
    smooth, ContinuumFit, Denoise, Normalisation, PreprocessConfig, Preprocessor, WavelengthGrid,
};

#[test]
fn haar_decomposition_and_denoising_match_pywavelets() {
    let golden = fixture("haar_golden.json");
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input = floats(&case["input"]);
        let level = case["level"].as_u64().unwrap() as usize;
        let coeffs = wavedec(&input, level);
        let want: Vec<Vec<f64>> = case["coeffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        assert_eq!(
            coeffs.len(),
            want.len(),
            "{name}: number of coefficient arrays"
        );
        for (k, (c, w)) in coeffs.iter().zip(&want).enumerate() {
            assert_close(&format!("{name} coeffs[{k}]"), c, w, 1e-12);
        }
        let denoiser = HaarDenoiser {
            fraction: case["fraction"].as_f64().unwrap(),
            levels: Some(level),
        };
        let out = denoiser.denoise(&input);
        // The issue asks for 1e-5; the arithmetic is the same, so demand far more.
        assert_close(name, &out, &floats(&case["output"]), 1e-12);
    }
}

#[test]
fn median_filter_matches_scipy() {
    let golden = fixture("median_golden.json");
    let width = golden["size"].as_u64().unwrap() as usize;
    for (i, case) in golden["cases"].as_array().unwrap().iter().enumerate() {
        let out = smooth::median_filter(&floats(&case["input"]), width);
        assert_close(
            &format!("median case {i}"),
            &out,
            &floats(&case["output"]),
            0.0,
        );
    }
}

#[test]
fn pseudo_continuum_matches_numpy_polyfit() {
    let golden = fixture("continuum_golden.json");
    let fit = ContinuumFit {
        degree: golden["degree"].as_u64().unwrap() as usize,
        iterations: golden["iterations"].as_u64().unwrap() as usize,
        lower_sigma: golden["lower_sigma"].as_f64().unwrap(),
        upper_sigma: golden["upper_sigma"].as_f64().unwrap(),
    };
    let grid = WavelengthGrid {
        start: golden["grid_start"].as_f64().unwrap(),
        step: 1.0,
        len: golden["grid_len"].as_u64().unwrap() as usize,
    }
    .wavelengths();
    for (i, case) in golden["cases"].as_array().unwrap().iter().enumerate() {
        let input = floats(&case["input"]);
        let cont = fit.continuum(&grid, &input).expect("fit");
        let want_cont = floats(&case["continuum"]);
        let scale = want_cont.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("continuum case {i}"),
            &cont,
            &want_cont,
            1e-7 * scale,
        );
        let out = fit.normalise(&grid, &input).unwrap();
        assert_close(
            &format!("normalised case {i}"),
            &out,
            &floats(&case["output"]),
            1e-6,
        );
    }
}

#[test]
fn whole_recipe_matches_astropy_pywavelets_pipeline() {
    let golden = fixture("preprocess_golden.json");
    let pre = Preprocessor::new(PreprocessConfig::default()).unwrap();
    let files = golden["files"].as_array().unwrap();
    let mut kept = 0;
    let mut rejected = 0;
    for f in files {
        let path = path_of(f);
        let name = file_name(&path);
        let spectrum = read_spectrum(&path).unwrap();
        let status = f["status"].as_str().unwrap();
        match pre.run(&spectrum) {
            Ok(input) => {
                assert_eq!(status, "ok", "{name}: kept, but the reference rejects it");
                let got: Vec<f64> = input.iter().map(|&v| v as f64).collect();
                // Golden values are f32 written as shortest round-trip decimals.
                let want: Vec<f64> = floats(&f["output"])
                    .iter()
                    .map(|&v| v as f32 as f64)
                    .collect();
                assert_close(&name, &got, &want, 1e-6);
                kept += 1;
            }
            Err(r) => {
                assert_eq!(r.code(), status, "{name}: {r}");
                rejected += 1;
            }
        }
    }
    assert!(
        kept >= 10 && rejected >= 2,
        "fixture exercises both paths: {kept} kept, {rejected} rejected"
    );
}

#[test]
fn all_nan_flux_is_rejected_with_a_reason() {
    let path = repo().join("tests/data/broken/all-nan-flux.fits.gz");
    let pre = Preprocessor::new(PreprocessConfig::default()).unwrap();
    let err = pre.run(&read_spectrum(&path).unwrap()).unwrap_err();
    assert_eq!(err.code(), "no-finite-flux");
}

#[test]
fn alternative_recipes_run_on_real_spectra() {
    let path = repo().join("tests/data/layouts/spec-59517-EG025613N082253M02_sp08-200.fits.gz");
    let spectrum = read_spectrum(&path).unwrap();
    let default = Preprocessor::new(PreprocessConfig::default())
        .unwrap()
        .run(&spectrum)
        .unwrap();
    let config = PreprocessConfig {
        normalisation: Normalisation::PseudoContinuum(ContinuumFit::default()),
        denoise: Denoise::Median { width: 3 },
        ..PreprocessConfig::default()
    };
    let alt = Preprocessor::new(config).unwrap().run(&spectrum).unwrap();
    assert_eq!(alt.len(), 4096);
    // Continuum-normalised flux sits around 1, unlike min-max flux in [0, 1].
    let mean = alt.iter().map(|&v| v as f64).sum::<f64>() / 4096.0;
    assert!((0.7..1.3).contains(&mean), "mean {mean}");
    assert_ne!(alt, default);
}

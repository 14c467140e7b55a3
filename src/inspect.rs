//! `spectrain inspect`: what a file is, and what preprocessing would do to it.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::fits::read_spectrum;
use crate::preprocess::Preprocessor;
use crate::spectrum::{Layout, SpectrumMeta};

/// Everything `inspect` reports about one file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: String,
    pub layout: Option<Layout>,
    pub meta: Option<SpectrumMeta>,
    pub pixels: Option<usize>,
    pub wavelength_range: Option<(f64, f64)>,
    pub bad_pixels: Option<usize>,
    pub non_finite_flux: Option<usize>,
    pub rest_frame_z: Option<f64>,
    pub zero_pixels_on_grid: Option<usize>,
    pub normalised_std: Option<f64>,
    /// `kept`, or the rejection code.
    pub outcome: String,
    pub detail: Option<String>,
}

pub fn inspect(path: &Path, pre: &Preprocessor) -> Inspection {
    let file = path.display().to_string();
    let spectrum = match read_spectrum(path) {
        Ok(s) => s,
        Err(e) => {
            return Inspection {
                file,
                layout: None,
                meta: None,
                pixels: None,
                wavelength_range: None,
                bad_pixels: None,
                non_finite_flux: None,
                rest_frame_z: None,
                zero_pixels_on_grid: None,
                normalised_std: None,
                outcome: e.code().to_string(),
                detail: Some(e.to_string()),
            }
        }
    };
    let (trace, result) = pre.run_traced(&spectrum);
    let (outcome, detail) = match result {
        Ok(_) => ("kept".to_string(), None),
        Err(r) => (r.code().to_string(), Some(r.to_string())),
    };
    Inspection {
        file,
        layout: Some(spectrum.layout),
        pixels: Some(spectrum.len()),
        wavelength_range: spectrum.wavelength_range(),
        bad_pixels: Some(spectrum.bad_pixel_count()),
        non_finite_flux: Some(spectrum.flux.iter().filter(|f| !f.is_finite()).count()),
        meta: Some(spectrum.meta),
        rest_frame_z: trace.rest_frame_z,
        zero_pixels_on_grid: trace.zero_pixels_on_grid,
        normalised_std: trace.normalised_std,
        outcome,
        detail,
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl Inspection {
    /// A human-readable block of `key: value` lines.
    pub fn to_text(&self, pre: &Preprocessor) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.file);
        let Some(meta) = &self.meta else {
            let _ = writeln!(s, "  error:        {}", opt(&self.detail));
            let _ = writeln!(s, "  outcome:      {}", self.outcome);
            return s;
        };
        let layout = self.layout.expect("read files have a layout");
        let _ = writeln!(s, "  layout:       {}", layout.describe());
        let _ = writeln!(
            s,
            "  release:      {}{}",
            meta.data_release
                .as_deref()
                .unwrap_or("- (no DATA_V; DR1?)"),
            meta.bitpix
                .map_or(String::new(), |b| format!(", BITPIX {b}"))
        );
        let _ = writeln!(s, "  obsid:        {}", opt(&meta.obsid));
        let _ = writeln!(s, "  designation:  {}", opt(&meta.designation));
        let _ = writeln!(s, "  ra, dec:      {}, {}", opt(&meta.ra), opt(&meta.dec));
        let _ = writeln!(
            s,
            "  class:        {} {}",
            opt(&meta.class),
            meta.subclass.as_deref().unwrap_or("")
        );
        let _ = writeln!(s, "  z:            {}", opt(&meta.z));
        let _ = writeln!(s, "  snrg:         {}", opt(&meta.snrg));
        let _ = writeln!(s, "  pixels:       {}", opt(&self.pixels));
        if let Some((lo, hi)) = self.wavelength_range {
            let _ = writeln!(s, "  wavelength:   {lo:.2} - {hi:.2} A");
        }
        let _ = writeln!(
            s,
            "  bad pixels:   {} (ivar <= 0 or ANDMASK set), {} non-finite flux",
            opt(&self.bad_pixels),
            opt(&self.non_finite_flux)
        );
        let g = pre.config().grid;
        let _ = writeln!(
            s,
            "  preprocess:   rest frame {}, grid {}-{} A ({} px), zero px on grid {}, normalised std {}",
            self.rest_frame_z
                .map_or("not applied".to_string(), |z| format!("z = {z}")),
            g.start,
            g.end(),
            g.len,
            opt(&self.zero_pixels_on_grid),
            self.normalised_std
                .map_or("-".to_string(), |v| format!("{v:.4}"))
        );
        let _ = writeln!(
            s,
            "  outcome:      {}{}",
            self.outcome,
            self.detail
                .as_ref()
                .map_or(String::new(), |d| format!(" ({d})"))
        );
        s
    }
}

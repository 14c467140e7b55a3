//! One FITS file in, one outcome out: read, preprocessed and kept, or
//! rejected with a reason code. `prepare` (with labels) and `predict` (without)
//! both take every file through here, so a file is judged the same way by both.

use std::path::Path;

use crate::fits::read_spectrum;
use crate::preprocess::Preprocessor;
use crate::spectrum::Spectrum;

/// The outcome of reading and preprocessing one file, independent of labels.
pub enum FileOutcome {
    Kept {
        spectrum: Box<Spectrum>,
        input: Vec<f32>,
    },
    Rejected {
        reason: &'static str,
        detail: String,
        /// Header metadata when the file could be read.
        meta: Option<Box<crate::spectrum::SpectrumMeta>>,
    },
}

/// Reads and preprocesses one file. Never panics: a panic inside a FITS library
/// becomes a rejection, so one strange file cannot stop a survey-sized run.
pub fn process_file(path: &Path, pre: &Preprocessor) -> FileOutcome {
    let work = || match read_spectrum(path) {
        Err(e) => FileOutcome::Rejected {
            reason: e.code(),
            detail: e.to_string(),
            meta: None,
        },
        Ok(spectrum) => match pre.run(&spectrum) {
            Ok(input) => FileOutcome::Kept {
                spectrum: Box::new(spectrum),
                input,
            },
            Err(r) => FileOutcome::Rejected {
                reason: r.code(),
                detail: format!("{}: {r}", path.display()),
                meta: Some(Box::new(spectrum.meta)),
            },
        },
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        FileOutcome::Rejected {
            reason: "unreadable",
            detail: format!("{}: reader failed: {msg}", path.display()),
            meta: None,
        }
    })
}

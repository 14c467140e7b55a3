//! `spectrain inspect`: a file's layout, metadata and what preprocessing does to it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use spectrain::inspect::inspect;
use spectrain::Preprocessor;

use super::args::RecipeArgs;

#[derive(Args)]
pub struct InspectArgs {
    /// FITS files to inspect.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

pub fn run(a: InspectArgs) -> Result<ExitCode> {
    let pre = Preprocessor::new(a.recipe.config()?)?;
    let mut all_read = true;
    for path in &a.files {
        let report = inspect(path, &pre);
        all_read &= report.layout.is_some();
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.to_text(&pre));
        }
    }
    // Non-zero when any file could not be read, so scripts can tell.
    Ok(if all_read {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

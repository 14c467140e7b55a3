//! The model directory on disk: the name of every file in it, the checksums
//! that prove member weights are the ones training wrote, and which entries
//! belong to spectrain (so `--force` never removes anything else).
//!
//! ```text
//! spec.json            network, training, preprocessing, labels, scaling, domain
//! calibration.json     per-label uncertainty model fitted on the validation split
//! member-NN.bpk        weights of member NN
//! member-NN.sha256     their SHA-256, `sha256sum -c` format, checked at every load
//! member-NN.csv        training curves;  member-NN.json  best epoch and metrics
//! member-NN.work/      checkpoint of an unfinished member (resume)
//! metrics.json, curves.png, provenance.json, finetune.json, finetune.md, domains.png
//! gate.json, gate-rows.f32, parent/   a fine-tuned model's domain gate and its parent
//! train.lock           held while a run writes the directory
//! ```

use std::path::{Path, PathBuf};

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Paths inside one model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.json")
    }
    /// The fitted uncertainty model (regression), written when training finishes.
    pub fn calibration(&self) -> PathBuf {
        self.root.join("calibration.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    pub fn provenance(&self) -> PathBuf {
        self.root.join("provenance.json")
    }
    pub fn curves_png(&self) -> PathBuf {
        self.root.join("curves.png")
    }
    pub fn finetune_json(&self) -> PathBuf {
        self.root.join("finetune.json")
    }
    pub fn finetune_md(&self) -> PathBuf {
        self.root.join("finetune.md")
    }
    /// A fine-tuned model's domain gate ([`crate::ensemble::gate`]).
    pub fn gate(&self) -> PathBuf {
        self.root.join("gate.json")
    }
    pub fn gate_rows(&self) -> PathBuf {
        self.root.join("gate-rows.f32")
    }
    /// The parent model a gated fine-tuned model falls back to.
    pub fn parent(&self) -> PathBuf {
        self.root.join("parent")
    }
    /// Held by a run writing the directory.
    pub fn train_lock(&self) -> PathBuf {
        self.root.join("train.lock")
    }

    pub fn member_weights(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.bpk"))
    }
    pub fn member_checksum(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.sha256"))
    }
    pub fn member_curves(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.csv"))
    }
    pub fn member_report(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.json"))
    }
    pub fn member_work(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.work"))
    }
    pub fn member_lock(&self, m: usize) -> PathBuf {
        self.root.join(format!("member-{m:02}.lock"))
    }

    /// Whether a directory entry is one spectrain writes in a model directory.
    pub fn is_own_entry(name: &str) -> bool {
        const FILES: [&str; 13] = [
            "spec.json",
            "calibration.json",
            "metrics.json",
            "provenance.json",
            "curves.png",
            "finetune.json",
            "finetune.md",
            "train.lock",
            "finetune-domain.png",
            "domains.png",
            "gate.json",
            "gate-rows.f32",
            "parent",
        ];
        if FILES.contains(&name) {
            return true;
        }
        // Temporary files of atomic writes: `.NAME.tmp-PID` and `.tmp-PID-NAME`.
        if name.starts_with('.') && name.contains(".tmp-") {
            return true;
        }
        let Some(rest) = name.strip_prefix("member-") else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits >= 2
            && matches!(
                &rest[digits..],
                ".bpk" | ".sha256" | ".csv" | ".json" | ".work" | ".lock"
            )
    }

    /// Copies what [`crate::ensemble::Ensemble::load`] reads (spec, calibration,
    /// member weights and checksums, and a gate with its parent, recursively)
    /// of this `members`-member model into `to`, which must not exist:
    /// written beside it and renamed, so `to` is whole or absent.
    pub fn copy_model(&self, to: &Path, members: usize) -> std::io::Result<()> {
        let name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = to.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let dest = Self::new(&tmp);
        let mut files = vec![(self.spec(), dest.spec())];
        for m in 0..members {
            files.push((self.member_weights(m), dest.member_weights(m)));
            files.push((self.member_checksum(m), dest.member_checksum(m)));
        }
        for (from, to) in [
            (self.calibration(), dest.calibration()),
            (self.gate(), dest.gate()),
            (self.gate_rows(), dest.gate_rows()),
        ] {
            if from.exists() {
                files.push((from, to));
            }
        }
        for (from, to) in &files {
            std::fs::copy(from, to)?;
        }
        if self.gate().exists() {
            self.parent_model().copy_model(&dest.parent(), members)?;
        }
        std::fs::rename(&tmp, to)
    }

    /// Removes a gate and its parent copy, where there are any.
    pub fn remove_gate(&self) -> std::io::Result<()> {
        for f in [self.gate(), self.gate_rows()] {
            if f.exists() {
                std::fs::remove_file(f)?;
            }
        }
        if self.parent().exists() {
            std::fs::remove_dir_all(self.parent())?;
        }
        Ok(())
    }

    /// The parent model directory of a gated model.
    pub fn parent_model(&self) -> Self {
        Self::new(&self.parent())
    }

    /// Records the SHA-256 of member `m`'s weights file `weights` (which may
    /// still sit at a temporary path) in `member-NN.sha256`.
    pub fn write_checksum(&self, m: usize, weights: &Path) -> std::io::Result<()> {
        let hex = sha256_file(weights)?;
        let name = format!("member-{m:02}.bpk");
        crate::atomic::write_atomically(&self.member_checksum(m), |tmp| {
            std::fs::write(tmp, format!("{hex}  {name}\n"))
        })
    }

    /// Checks member `m`'s weights against their recorded SHA-256.
    pub fn verify_checksum(&self, m: usize) -> Result<(), String> {
        let sum_path = self.member_checksum(m);
        let weights = self.member_weights(m);
        let text = std::fs::read_to_string(&sum_path).map_err(|e| {
            format!(
                "no readable checksum {} ({e}): every member's weights need their SHA-256 \
                 (models written before spectrain 0.2 lack it; if you trust these weights, \
                 create it with `sha256sum member-{m:02}.bpk > member-{m:02}.sha256` in {})",
                sum_path.display(),
                self.root.display()
            )
        })?;
        let expected = text.split_whitespace().next().unwrap_or("").to_lowercase();
        let actual = sha256_file(&weights).map_err(|e| e.to_string())?;
        if expected != actual {
            return Err(format!(
                "SHA-256 {actual} does not match {expected} recorded in {}: the weights are \
                 corrupt or were changed after training",
                sum_path.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_entries_are_recognised_and_nothing_else() {
        for own in [
            "spec.json",
            "calibration.json",
            "member-00.bpk",
            "member-12.sha256",
            "member-03.work",
            "member-100.csv",
            ".member-00.bpk.tmp-123",
            "train.lock",
        ] {
            assert!(ModelDir::is_own_entry(own), "{own}");
        }
        for foreign in [
            "thesis.tex",
            "member-.bpk",
            "member-0.bpk",
            "member-00.bpk.bak",
            "notes.json",
            "data.h5",
            "holdout",
        ] {
            assert!(!ModelDir::is_own_entry(foreign), "{foreign}");
        }
    }
}

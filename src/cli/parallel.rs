//! `train --parallel-members N`: several members of one ensemble trained at
//! once, each by a `train --member K` process of this same executable, so a
//! GPU that one small network leaves idle is kept busy.
//!
//! Processes, not threads: burn's RNG (initialisation, dropout) is
//! process-wide, so members sharing a process would not train reproducibly.
//! A member task derives its spec and plan from the same recipe as a whole
//! run, so on the CPU the model is the one `--parallel-members 1` trains, bit
//! for bit. On wgpu (measured on lavapipe) it is not: concurrent processes
//! train slightly different members, likely through autotune's timed kernel
//! choice, although the same tasks one after another are exact.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use spectrain::model::ComputeDevice;
use spectrain::train::{prepare_members, TrainOptions, TrainReport};

use super::train::TrainArgs;

/// The most members `auto` trains at once on a GPU.
const AUTO_GPU_MAX: usize = 4;

/// `--parallel-members`: a number, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParallelMembers {
    Auto,
    Exactly(usize),
}

/// Parses `auto` or a whole number of at least 1.
pub fn parse(s: &str) -> Result<ParallelMembers, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(ParallelMembers::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(ParallelMembers::Exactly(n)),
        _ => Err(format!(
            "expected auto or a number of members of at least 1, got '{s}'"
        )),
    }
}

/// `auto`'s rule: up to [`AUTO_GPU_MAX`] members on a wgpu hardware adapter;
/// one on the CPU backends (members there would only share the same cores)
/// and on a software rasteriser.
fn auto(compute: &ComputeDevice) -> usize {
    match &compute.adapter {
        Some(a) if compute.backend == "wgpu" && !a.is_software() => AUTO_GPU_MAX,
        _ => 1,
    }
}

/// How many members of the run `opts` describes to train at once (1: in this
/// process, as always). `auto` resolves the backend without logging it; wgpu
/// is initialised once per process, so the run opening it again costs nothing.
pub fn members_at_once(choice: ParallelMembers, opts: &TrainOptions) -> usize {
    let n = match choice {
        ParallelMembers::Exactly(n) => n,
        // A backend that cannot be opened fails the run itself, with its reason.
        ParallelMembers::Auto => opts.backend.resolve().map_or(1, |c| auto(&c)),
    };
    n.clamp(1, opts.training.members.max(1))
}

/// Trains the members of the run `opts` describes (`recipe` as parsed),
/// `at_once` at a time, each in its own process, then finishes the run here:
/// the model and report a whole `train` gives. A failed member stops new
/// ones from starting; those running finish, their work is kept, and the
/// error names the member: `--resume` continues.
pub fn train_members(
    recipe: &TrainArgs,
    opts: &TrainOptions,
    at_once: usize,
) -> Result<TrainReport> {
    let prepared = prepare_members(opts)?;
    let exe = std::env::current_exe().context("finding the spectrain executable to run members")?;
    // CPU backends: split the cores rather than oversubscribe them.
    let threads = (prepared.compute.backend != "wgpu")
        .then(|| (rayon::current_num_threads() / at_once).max(1));
    let total = prepared.members;
    let mut finished = total - prepared.pending.len();
    tracing::info!(
        "training {} of {total} members, {at_once} at once, each in its own process{}",
        prepared.pending.len(),
        threads.map_or(String::new(), |t| format!(" (-j {t} each)"))
    );
    let mut waiting = prepared.pending.iter().copied();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    loop {
        while failed.is_empty() && running.len() < at_once {
            let Some(m) = waiting.next() else { break };
            let args = recipe.member_task_args(m, opts.resume);
            match spawn(&exe, threads, &args) {
                Ok(child) => running.push((m, child)),
                Err(e) => failed.push(format!("member {m} could not start ({e})")),
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut i = 0;
        while i < running.len() {
            let status = running[i]
                .1
                .try_wait()
                .context("waiting for a member process")?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let (m, _) = running.swap_remove(i);
            if status.success() {
                finished += 1;
                tracing::info!("member {m} finished ({finished}/{total})");
            } else {
                let why = format!("member {m} failed ({})", describe(status));
                if !running.is_empty() {
                    tracing::warn!(
                        "{why}; no new member starts, waiting for the {} running",
                        running.len()
                    );
                }
                failed.push(why);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{}; the trained members and checkpoints in {} are kept: run the same command with \
             --resume to continue",
            failed.join("; "),
            opts.out.display()
        );
    }
    Ok(prepared.finish(opts, at_once)?)
}

/// Starts `exe -q [-j T] train ARGS`: its warnings reach our stderr, its
/// one-line summary is dropped (the whole run prints its own).
fn spawn(
    exe: &Path,
    threads: Option<usize>,
    args: &[std::ffi::OsString],
) -> std::io::Result<Child> {
    let mut c = Command::new(exe);
    c.arg("-q");
    if let Some(t) = threads {
        c.arg("-j").arg(t.to_string());
    }
    c.arg("train")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure only makes async-signal-safe
        // calls (prctl, getppid, raise) and allocates nothing.
        unsafe {
            c.pre_exec(move || {
                // A member dies with us (kill -9 included) rather than train on
                // unseen; its checkpoint stays for --resume.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::raise(libc::SIGTERM);
                }
                Ok(())
            });
        }
    }
    c.spawn()
}

/// An exit status in words: `exit status 1`, or the signal that ended it.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_auto_and_positive_numbers_only() {
        assert_eq!(parse("auto"), Ok(ParallelMembers::Auto));
        assert_eq!(parse("3"), Ok(ParallelMembers::Exactly(3)));
        for bad in ["0", "-1", "two", ""] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("at least 1"), "{bad}: {e}");
        }
    }

    /// The member task's command line parses back to the same recipe.
    #[test]
    fn member_tasks_get_the_same_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("-odd name.toml");
        std::fs::write(&config, "[training]\nmembers = 3\nepochs = 2\n").unwrap();
        let mut given = vec![
            "spectrain".into(),
            "-j".into(),
            "3".into(),
            "train".into(),
            "--data".into(),
            "d.h5".into(),
            "--out=m".into(),
        ];
        given.push(std::ffi::OsString::from("--config"));
        given.push(config.clone().into_os_string());
        for a in [
            "--columns",
            "teff,logg",
            "--arch",
            "mlp",
            "--hidden",
            "16,8",
            "--dropout",
            "0.30000000000000004",
            "--loss",
            "smape",
            "--members",
            "4",
            "--epochs",
            "7",
            "--batch",
            "8",
            "--lr",
            "1.5e-4",
            "--lr-schedule",
            "constant",
            "--warmup-epochs",
            "2",
            "--weight-decay",
            "1e-7",
            "--augment-noise",
            "0.7",
            "--val-fraction",
            "0.25",
            "--seed",
            "18446744073709551615",
            "--backend",
            "cpu",
            "--resume",
            "--parallel-members",
            "2",
        ] {
            given.push(a.into());
        }
        let recipe = |cli: crate::cli::Cli| match cli.command {
            crate::cli::Command::Train(t) => t,
            _ => unreachable!(),
        };
        let parent = recipe(crate::cli::Cli::try_parse_from(&given).unwrap());
        let mut child: Vec<std::ffi::OsString> = vec!["spectrain".into(), "train".into()];
        child.extend(parent.recipe.member_task_args(2, true));
        let task = recipe(crate::cli::Cli::try_parse_from(&child).unwrap());
        let (want, got) = (
            parent.recipe.options(false).unwrap(),
            task.recipe.options(false).unwrap(),
        );
        assert_eq!(format!("{want:?}"), format!("{got:?}"));
        assert_eq!(task.recipe.member, Some(2));
        assert!(task.recipe.resume.resume && !task.recipe.force.force);
    }
}

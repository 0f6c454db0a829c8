//! Paths a command reads and writes must not be the same file: a metrics file that is the
//! model would be appended into it, a model saved over its own training data would lose it.

use anyhow::bail;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Input,
    Output,
}

/// Which file a path is: an existing file by device and inode (so a hard link or a link
/// is the file it reaches), a new one by its folder's real path joined with its name.
#[derive(PartialEq, Eq)]
enum Identity {
    File(u64, u64),
    New(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(path) {
        return Some(Identity::File(m.dev(), m.ino()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(Identity::New(std::fs::canonicalize(dir).ok()?.join(path.file_name()?)))
}

/// The files under a path: a folder's regular files (an input folder such as `--data`), or
/// the path itself.
fn files(path: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => vec![path.to_path_buf()],
    }
}

/// Fails when an output is the same file as another output or an input. Resuming from
/// the file that `--save` writes is the one pair allowed: a run continues its own save.
pub fn distinct(paths: &[(&str, Option<&Path>, Role)]) -> anyhow::Result<()> {
    let given: Vec<(&str, &Path, Role)> = paths.iter().filter_map(|(f, p, r)| Some((*f, (*p)?, *r))).collect();
    for (i, &(flag, path, role)) in given.iter().enumerate() {
        if role != Role::Output {
            continue;
        }
        let Some(me) = identity(path) else { continue };
        for (j, &(other, other_path, _)) in given.iter().enumerate() {
            if i == j || (flag, other) == ("--save", "--resume") {
                continue;
            }
            if files(other_path).iter().any(|f| identity(f).as_ref() == Some(&me)) {
                bail!(
                    "{flag} {} is the same file as {other} {}: give {flag} a file of its own",
                    path.display(),
                    other_path.display()
                );
            }
        }
    }
    Ok(())
}

/// Output files, checked now rather than after the first epoch (or after a launcher's ranks
/// have started): the model and the plot are saved atomically, over regular files only;
/// metrics may go to a pipe or a special file, so only their folder must exist.
pub fn check_outputs(save: Option<&Path>, plot: Option<&Path>, metrics: Option<&Path>) -> anyhow::Result<()> {
    for (flag, p) in [("--save", save), ("--plot", plot)] {
        if let Some(p) = p {
            chainrule::io::save_target(p).map_err(|e| anyhow::anyhow!("{flag} {e}"))?;
        }
    }
    if let Some(m) = metrics {
        chainrule::io::stream_target(m).map_err(|e| anyhow::anyhow!("--metrics-out {e}"))?;
    }
    Ok(())
}

/// A folder of outputs (`--out`): it is a folder or can be made one, and each file the
/// command will write there can be written, checked before any measurement runs.
pub fn check_out_folder(out: &Path, files: &[&str]) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        bail!(
            "--out {}: is a file; give a folder (it is made if missing)",
            out.display()
        );
    }
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?;
    for f in files {
        chainrule::io::save_target(&out.join(f))
            .map_err(|e| anyhow::anyhow!("--out {}: cannot write its {f} there ({e})", out.display()))?;
    }
    Ok(())
}

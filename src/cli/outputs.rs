//! Output files checked before any long work: each must be writable, none
//! may be one of the command's inputs (writing a decisions file over the
//! trace being read destroys the trace before a row is read), and no two
//! outputs may be the same file.
//!
//! Files are compared by what they are, not by how they are named: an
//! existing file by its device and inode (so a symbolic or hard link to the
//! trace is caught), a file yet to be created by its canonical directory and
//! name. Nothing is truncated or created here: a file that does not exist
//! yet is probed by creating it and removing it again.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// One file a command reads or writes, with the flag that named it.
pub(super) struct Named<'a> {
    /// How the user named it, e.g. `--decisions`.
    pub flag: &'a str,
    /// The path.
    pub path: &'a Path,
}

/// What a file is, for comparing two paths.
#[derive(PartialEq, Eq)]
enum FileId {
    /// An existing file: device and inode (Unix), or canonical path.
    Existing(u64, u64, PathBuf),
    /// A file yet to be created: its canonical directory and name.
    New(PathBuf),
}

impl FileId {
    fn of(path: &Path) -> FileId {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    FileId::Existing(meta.dev(), meta.ino(), canonical)
                }
                #[cfg(not(unix))]
                {
                    let _ = meta;
                    FileId::Existing(0, 0, canonical)
                }
            }
            Err(_) => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
                FileId::New(dir.join(path.file_name().unwrap_or_default()))
            }
        }
    }

    fn same(&self, other: &FileId) -> bool {
        match (self, other) {
            #[cfg(unix)]
            (FileId::Existing(d1, i1, _), FileId::Existing(d2, i2, _)) => d1 == d2 && i1 == i2,
            #[cfg(not(unix))]
            (FileId::Existing(_, _, a), FileId::Existing(_, _, b)) => a == b,
            (FileId::New(a), FileId::New(b)) => a == b,
            _ => false,
        }
    }
}

/// Checks `outputs` against `inputs` and each other, and that each can be
/// written; the error names the flags and paths involved.
pub(super) fn check(inputs: &[Named<'_>], outputs: &[Named<'_>]) -> Result<(), String> {
    let input_ids: Vec<FileId> = inputs.iter().map(|i| FileId::of(i.path)).collect();
    let mut seen: Vec<(FileId, &Named<'_>)> = Vec::new();
    for out in outputs {
        let id = FileId::of(out.path);
        if let Some((input, _)) = inputs.iter().zip(&input_ids).find(|(_, i)| i.same(&id)) {
            return Err(format!(
                "{} {}: this is the {} {}, which this command reads; writing it would destroy it, so \
                 choose another file",
                out.flag,
                out.path.display(),
                input.flag,
                input.path.display()
            ));
        }
        if let Some((_, first)) = seen.iter().find(|(s, _)| s.same(&id)) {
            return Err(format!(
                "{} {}: {} {} already writes this file; give each output its own file",
                out.flag,
                out.path.display(),
                first.flag,
                first.path.display()
            ));
        }
        writable(out)?;
        seen.push((id, out));
    }
    Ok(())
}

/// Whether `out` can be written, without changing what is there.
fn writable(out: &Named<'_>) -> Result<(), String> {
    let shown = out.path.display();
    if out.path.is_dir() {
        return Err(format!("{} {shown}: is a directory; expected a file name", out.flag));
    }
    let cannot = |e: std::io::Error| format!("{} {shown}: cannot create {shown}: {e}", out.flag);
    if out.path.exists() {
        // Open without truncating: only whether it could be written.
        OpenOptions::new().append(true).open(out.path).map(drop).map_err(cannot)
    } else {
        let probe: std::io::Result<File> = OpenOptions::new().write(true).create_new(true).open(out.path);
        probe.map_err(cannot)?;
        std::fs::remove_file(out.path).map_err(cannot)
    }
}

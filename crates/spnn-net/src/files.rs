//! Files only their owner may read: keys, certificates' private halves, checkpoints.
//!
//! [`write_private`] creates a temporary file next to the target **exclusively**
//! (`O_CREAT | O_EXCL`, so an existing file or symlink at that name is an error, never
//! followed), with mode `0600` from the start, writes and syncs it, renames it over the target
//! and syncs the directory: a crash leaves the old file or the new one, and no other user ever
//! sees the bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{NetError, Result};

fn io(path: &Path, e: std::io::Error) -> NetError {
    NetError::Io(format!("{}: {e}", path.display()))
}

fn temporary(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `bytes` to `path` atomically with mode `0600` (module docs). Creates the parent
/// directory (mode `0700` when it is new).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write(path, bytes, true).map(|_| ())
}

/// Like [`write_private`], but never replaces an existing `path`: returns `false` (and writes
/// nothing) if it exists. The file appears complete or not at all, so concurrent creators agree
/// on one winner (a key several processes may create at once).
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<bool> {
    write(path, bytes, false)
}

fn write(path: &Path, bytes: &[u8], replace: bool) -> Result<bool> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = temporary(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let placed = if replace {
        std::fs::rename(&tmp, path).map(|()| true)
    } else {
        // A hard link fails if the name exists, unlike rename.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    };
    let placed = match placed {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path, e));
        }
    };
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_atomic_and_never_follow_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/secret.key");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
            // A link planted where the target is gets replaced, and its target is untouched.
            let victim = dir.path().join("victim");
            std::fs::write(&victim, b"keep").unwrap();
            let linked = dir.path().join("linked.key");
            std::os::unix::fs::symlink(&victim, &linked).unwrap();
            write_private(&linked, b"secret").unwrap();
            assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
            assert!(
                !std::fs::symlink_metadata(&linked)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        // Creating never replaces.
        assert!(!create_private(&path, b"three").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let fresh = dir.path().join("fresh.key");
        assert!(create_private(&fresh, b"k").unwrap());
        assert_eq!(std::fs::read(&fresh).unwrap(), b"k");
    }
}

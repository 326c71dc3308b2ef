//! Checkpoint files: written atomically, verified on reading.
//!
//! ```text
//! file = "SPNNCKPT"  version:u32  length:u64  payload  sha256(payload):32
//! ```
//!
//! [`write_atomic`] writes to a temporary file in the same directory, syncs it, renames it over
//! the target and syncs the directory, so a crash leaves either the old file or the new one.
//! [`read_verified`] refuses a file that is truncated, has trailing bytes, another magic or
//! version, or a payload whose checksum does not match — a corrupted checkpoint is an error,
//! never loaded.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Result, SpnnError};

const MAGIC: &[u8; 8] = b"SPNNCKPT";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;

fn err(path: &Path, reason: impl Into<String>) -> SpnnError {
    SpnnError::Persistence {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Writes `payload` to `path` atomically, with a checksum. Creates the parent directory.
pub fn write_atomic(path: &Path, payload: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("checkpoint"),
        std::process::id()
    ));
    let io = |e: std::io::Error| err(&tmp, e.to_string());
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        f.write_all(&(payload.len() as u64).to_le_bytes())
            .map_err(io)?;
        f.write_all(payload).map_err(io)?;
        f.write_all(&Sha256::digest(payload)).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(path, format!("rename: {e}")))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads and verifies a file written by [`write_atomic`].
pub fn read_verified(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    if bytes.len() < HEADER + 32 || &bytes[..8] != MAGIC {
        return Err(err(
            path,
            "not an spnn checkpoint (bad magic or truncated header)",
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(err(
            path,
            format!("checkpoint version {version}, this build reads {VERSION}"),
        ));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if len != (bytes.len() - HEADER - 32) as u64 {
        return Err(err(
            path,
            format!(
                "payload length {len} does not match the file ({} bytes): truncated or partial",
                bytes.len()
            ),
        ));
    }
    let payload = &bytes[HEADER..bytes.len() - 32];
    if Sha256::digest(payload).as_slice() != &bytes[bytes.len() - 32..] {
        return Err(err(path, "checksum mismatch: the checkpoint is corrupted"));
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.ckpt");
        write_atomic(&path, b"hello shares").unwrap();
        assert_eq!(read_verified(&path).unwrap(), b"hello shares");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(read_verified(&path).unwrap(), b"second");
        let good = std::fs::read(&path).unwrap();
        for (name, bad) in [
            ("truncated", good[..good.len() - 1].to_vec()),
            ("flipped payload bit", {
                let mut b = good.clone();
                b[HEADER] ^= 1;
                b
            }),
            ("trailing byte", {
                let mut b = good.clone();
                b.push(0);
                b
            }),
            ("bad magic", {
                let mut b = good.clone();
                b[0] = b'X';
                b
            }),
            ("empty", vec![]),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(read_verified(&path).is_err(), "{name} was accepted");
        }
        assert!(read_verified(&dir.path().join("missing")).is_err());
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}

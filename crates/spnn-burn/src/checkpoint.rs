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

/// The server's checkpoint: its Burn model and optimiser as burnpack records, and the session
/// counters, in one verified file `<dir>/server-<tag>.ckpt`.
pub mod server {
    use std::path::{Path, PathBuf};

    use burn::module::Module;
    use burn::optim::ModuleOptimizer;
    use burn::store::ModuleRecord;
    use burn::tensor::Bytes;
    use spnn_net::codec::{Blob, Codec, Reader};

    use super::{read_verified, write_atomic};
    use crate::error::{Result, SpnnError};
    use crate::protocol::server::ServerSession;

    fn path(dir: &Path, tag: &str) -> PathBuf {
        dir.join(format!("server-{tag}.ckpt"))
    }

    fn record_err(path: &Path, e: impl std::fmt::Debug) -> SpnnError {
        SpnnError::Persistence {
            path: path.display().to_string(),
            reason: format!("{e:?}"),
        }
    }

    /// Saves every party's state under `tag`: the holders their shares (through the
    /// session), the server its model, optimiser and counters into `dir`.
    pub fn save<M: Module>(
        model: &M,
        optim: &ModuleOptimizer,
        session: &ServerSession,
        dir: &Path,
        tag: &str,
    ) -> Result<()> {
        session.save(tag)?;
        let path = path(dir, tag);
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| record_err(&path, e))?;
        let optim_bytes = optim.into_bytes().map_err(|e| record_err(&path, e))?;
        let mut payload = Vec::new();
        session.counters().encode(&mut payload);
        Blob(model_bytes.to_vec()).encode(&mut payload);
        Blob(optim_bytes.to_vec()).encode(&mut payload);
        write_atomic(&path, &payload)
    }

    /// Loads the server's part of checkpoint `tag` into a freshly built `model` and `optim`
    /// on a session started with `SessionSpec::resuming(tag)`.
    pub fn load<M: Module>(
        model: M,
        optim: ModuleOptimizer,
        session: &ServerSession,
        dir: &Path,
        tag: &str,
    ) -> Result<(M, ModuleOptimizer)> {
        let path = path(dir, tag);
        let payload = read_verified(&path)?;
        let bad = |e: spnn_net::CodecError| record_err(&path, e);
        let mut r = Reader::new(&payload);
        let counters = <(u64, u64)>::read(&mut r).map_err(bad)?;
        let Blob(model_bytes) = Blob::read(&mut r).map_err(bad)?;
        let Blob(optim_bytes) = Blob::read(&mut r).map_err(bad)?;
        r.finish().map_err(bad)?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model_bytes))
            .map_err(|e| record_err(&path, e))?;
        let model = model
            .try_load_record(record)
            .map_err(|e| record_err(&path, e))?;
        let optim = optim
            .from_bytes(Bytes::from_bytes_vec(optim_bytes))
            .map_err(|e| record_err(&path, e))?;
        session.set_counters(counters);
        Ok((model, optim))
    }
}

//! Checkpoint files: private, atomic, authenticated.
//!
//! ```text
//! file = "SPNNCKPT"  version:u32  length:u64  payload  HMAC-SHA256(key, name ‖ everything before):32
//! ```
//!
//! [`write_sealed`] writes through [`spnn_net::files::write_private`]: a temporary file opened
//! exclusively with mode `0600` (never following a planted link), synced, renamed over the
//! target, the directory synced — a crash leaves the old file or the new one. The MAC key is
//! this party's own: 32 bytes from the operating system in `checkpoint.key` in the same
//! directory (mode `0600`, created with the first checkpoint). [`read_sealed`] refuses a file
//! that is truncated, has trailing bytes, another magic or version, or a MAC that does not
//! verify — so a checkpoint someone edited is detected as tampering, not loaded, and neither a
//! checkpoint copied from another party's directory nor one renamed to another tag verifies
//! (the MAC covers the file's name).

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use spnn_crypto::SecureRng;

use crate::error::{Result, SpnnError};

const MAGIC: &[u8; 8] = b"SPNNCKPT";
const VERSION: u32 = 4;
const HEADER: usize = 8 + 4 + 8;
const TAG: usize = 32;
/// The name of a party's checkpoint MAC key inside its checkpoint directory.
pub const KEY_FILE: &str = "checkpoint.key";

fn err(path: &Path, reason: impl Into<String>) -> SpnnError {
    SpnnError::Persistence {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn key_path(path: &Path) -> PathBuf {
    dir_of(path).join(KEY_FILE)
}

/// Deletes the numbered checkpoints `{prefix}epoch-{n}.ckpt` in `dir` but the `keep` with the
/// highest `n`; every other file (`best`, `final`, other tags, the key, other parties' files)
/// stays. `keep = 0` keeps everything. Returns the paths removed.
pub fn retain_numbered(dir: &Path, prefix: &str, keep: usize) -> Result<Vec<PathBuf>> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))? {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let name = entry.file_name();
        let n = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_prefix("epoch-"))
            .and_then(|n| n.strip_suffix(".ckpt"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut removed = Vec::new();
    for (_, path) in numbered.into_iter().skip(keep) {
        std::fs::remove_file(&path).map_err(|e| err(&path, e.to_string()))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Reads this directory's MAC key; with `create`, makes one if there is none (several parties
/// sharing a directory, as in tests, agree on the first one created).
fn key(path: &Path, create: bool) -> Result<[u8; 32]> {
    let kp = key_path(path);
    if create && !kp.exists() {
        let mut k = [0u8; 32];
        SecureRng::from_os_entropy().fill_bytes(&mut k);
        spnn_net::files::create_private(&kp, &k).map_err(|e| err(&kp, e.to_string()))?;
    }
    match std::fs::read(&kp) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&kp)
                    .map_err(|e| err(&kp, e.to_string()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(err(
                        &kp,
                        format!(
                            "checkpoint key has mode {:o}: others may read it",
                            mode & 0o777
                        ),
                    ));
                }
            }
            bytes
                .try_into()
                .map_err(|_| err(&kp, "a checkpoint key is 32 bytes"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(err(
            &kp,
            "no checkpoint key next to the checkpoint: it cannot be verified",
        )),
        Err(e) => Err(err(&kp, e.to_string())),
    }
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Writes `payload` to `path` privately, atomically and with a MAC (module docs).
pub fn write_sealed(path: &Path, payload: &[u8]) -> Result<()> {
    let key = key(path, true)?;
    spnn_net::files::write_private(path, &seal(payload, &key, path))
        .map_err(|e| err(path, e.to_string()))
}

fn name_of(path: &Path) -> Vec<u8> {
    path.file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default()
}

/// The file bytes of `payload` sealed with `key` for the file at `path` (module docs).
pub fn seal(payload: &[u8], key: &[u8; 32], path: &Path) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + payload.len() + TAG);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let mut m = mac(key);
    m.update(&name_of(path));
    m.update(&bytes);
    bytes.extend_from_slice(&m.finalize().into_bytes());
    bytes
}

/// Reads and verifies a file written by [`write_sealed`].
pub fn read_sealed(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    // The key is only looked up for a file that could be a checkpoint at all.
    open_sealed_with(&bytes, path, || key(path, false))
}

/// Checks and opens sealed file bytes with `key`; `path` names the file in errors.
pub fn open_sealed(bytes: &[u8], key: &[u8; 32], path: &Path) -> Result<Vec<u8>> {
    open_sealed_with(bytes, path, || Ok(*key))
}

fn open_sealed_with(
    bytes: &[u8],
    path: &Path,
    key: impl FnOnce() -> Result<[u8; 32]>,
) -> Result<Vec<u8>> {
    if bytes.len() < HEADER + TAG || &bytes[..8] != MAGIC {
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
    if len != (bytes.len() - HEADER - TAG) as u64 {
        return Err(err(
            path,
            format!(
                "payload length {len} does not match the file ({} bytes): truncated or partial",
                bytes.len()
            ),
        ));
    }
    let key = key()?;
    let (body, tag) = bytes.split_at(bytes.len() - TAG);
    let mut m = mac(&key);
    m.update(&name_of(path));
    m.update(body);
    m.verify_slice(tag).map_err(|_| {
        err(
            path,
            "MAC mismatch: the checkpoint was modified, corrupted, renamed, or written by \
             another party",
        )
    })?;
    Ok(body[HEADER..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_numbered_checkpoints_of_one_party_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = |prefix: &str| -> Vec<String> {
            let mut out: Vec<String> = (1..=12)
                .map(|n| format!("{prefix}epoch-{n}.ckpt"))
                .chain(["best", "final", "epoch-x"].map(|t| format!("{prefix}{t}.ckpt")))
                .collect();
            out.sort();
            out
        };
        for name in names("server-").iter().chain(&names("holder-1-")) {
            write_sealed(&dir.path().join(name), b"x").unwrap();
        }
        let removed = retain_numbered(dir.path(), "server-", 3).unwrap();
        assert_eq!(removed.len(), 9);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("server-"))
            .collect();
        left.sort();
        // Numbers, not names, decide: epoch-10..12 stay (epoch-9 sorts after epoch-12 by name).
        let expected = [
            "server-best.ckpt",
            "server-epoch-10.ckpt",
            "server-epoch-11.ckpt",
            "server-epoch-12.ckpt",
            "server-epoch-x.ckpt",
            "server-final.ckpt",
        ];
        assert_eq!(left, expected);
        // Another party's files and the key are untouched; keep = 0 keeps everything.
        assert!(
            retain_numbered(dir.path(), "holder-1-", 0)
                .unwrap()
                .is_empty()
        );
        for name in names("holder-1-") {
            assert!(dir.path().join(name).exists());
        }
        assert!(dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn round_trip_and_every_corruption_or_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.ckpt");
        write_sealed(&path, b"hello shares").unwrap();
        assert_eq!(read_sealed(&path).unwrap(), b"hello shares");
        write_sealed(&path, b"second").unwrap();
        assert_eq!(read_sealed(&path).unwrap(), b"second");
        let good = std::fs::read(&path).unwrap();
        // A consistent forgery: new payload, new plain checksum-style trailer, no key.
        let mut forged = good[..HEADER].to_vec();
        forged[12..20].copy_from_slice(&6u64.to_le_bytes());
        forged.extend_from_slice(b"evil!!");
        forged.extend_from_slice(&<Sha256 as sha2::Digest>::digest(b"evil!!"));
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
            ("forged without the key", forged),
            ("empty", vec![]),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(read_sealed(&path).is_err(), "{name} was accepted");
        }
        assert!(read_sealed(&dir.path().join("missing")).is_err());
        // Another party's key does not verify this party's file.
        std::fs::write(&path, &good).unwrap();
        let other = tempfile::tempdir().unwrap();
        let moved = other.path().join("state.ckpt");
        write_sealed(&other.path().join("x.ckpt"), b"x").unwrap();
        std::fs::copy(&path, &moved).unwrap();
        let e = read_sealed(&moved).unwrap_err().to_string();
        assert!(e.contains("MAC mismatch"), "{e}");
        // Nor does one renamed to another tag.
        let renamed = dir.path().join("sub/other.ckpt");
        std::fs::copy(&path, &renamed).unwrap();
        assert!(read_sealed(&renamed).is_err());
        std::fs::remove_file(&renamed).unwrap();
        // No temporary files are left behind; the key and the checkpoint are private.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        #[cfg(unix)]
        for name in names {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("sub").join(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ckpt");
        write_sealed(&path, b"x").unwrap();
        let kp = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&kp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_sealed(&path).unwrap_err().to_string();
        assert!(e.contains("others may read"), "{e}");
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

    use super::{read_sealed, write_sealed};
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
        write_sealed(&path, &payload)
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
        let payload = read_sealed(&path)?;
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
        session.set_counters(counters)?;
        Ok((model, optim))
    }
}

//! The IDX format of MNIST-style data sets, plain or gzip-compressed.
//!
//! ```text
//! magic = 0x00 0x00 type ndims       type 0x08 = unsigned byte (the only one accepted)
//! dims  = ndims × u32 big-endian
//! data  = Π dims bytes, row-major
//! ```
//!
//! The header is checked (magic, element type, 1 ≤ ndims ≤ 4, dimensions that multiply to at
//! most [`MAX_ELEMENTS`] without overflow) and the payload must have exactly that many bytes.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// Largest element count accepted (2^31: far above any MNIST-style file).
pub const MAX_ELEMENTS: u64 = 1 << 31;

/// An array of unsigned bytes with its dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[n]` for labels, `[n, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Elements per item (the product of all dimensions but the first).
    pub fn item_len(&self) -> usize {
        self.dims[1..].iter().product()
    }

    /// Number of items (the first dimension).
    pub fn len(&self) -> usize {
        self.dims[0]
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.dims[0] == 0
    }
}

/// Reads an IDX file; a `.gz` name is decompressed.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DataError::Io {
        path: source.clone(),
        reason: e.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        parse_idx_gz(&bytes, &source)
    } else {
        parse_idx(&bytes, &source)
    }
}

/// Parses gzip-compressed IDX bytes; `source` names them in errors. The decompressed size is
/// bounded by the largest valid IDX file, so a gzip bomb stops there.
pub fn parse_idx_gz(compressed: &[u8], source: &str) -> Result<IdxArray> {
    let limit = MAX_ELEMENTS + 4 + 4 * 4 + 1;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::Invalid(format!("{source}: not gzip data ({e})")))?;
    parse_idx(&bytes, source)
}

/// Parses IDX bytes; `source` names them in errors.
pub fn parse_idx(bytes: &[u8], source: &str) -> Result<IdxArray> {
    let bad = |reason: String| DataError::Invalid(format!("{source}: {reason}"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "element type {:#04x}; only unsigned bytes (0x08) are supported",
            bytes[2]
        )));
    }
    let ndims = bytes[3] as usize;
    if !(1..=4).contains(&ndims) {
        return Err(bad(format!("{ndims} dimensions")));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&t| t <= MAX_ELEMENTS);
    let total = total.ok_or_else(|| bad(format!("dimensions {dims:?} are too large")))? as usize;
    if bytes.len() - header != total {
        return Err(bad(format!(
            "{} data bytes for dimensions {dims:?} ({total} expected)",
            bytes.len() - header
        )));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn round_trip_plain_and_gzip() {
        let bytes = idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(&bytes, "x").unwrap();
        assert_eq!((a.len(), a.item_len()), (2, 6));
        let dir = std::env::temp_dir().join(format!("spnn-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.idx.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut enc, &bytes).unwrap();
        enc.finish().unwrap();
        assert_eq!(read_idx(&path).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_headers_and_sizes_are_refused() {
        assert!(parse_idx(&[0, 0, 8], "x").is_err());
        assert!(parse_idx(&[1, 0, 8, 1, 0, 0, 0, 0], "x").is_err(), "magic");
        assert!(
            parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], "x").is_err(),
            "float type"
        );
        assert!(parse_idx(&[0, 0, 8, 9], "x").is_err(), "ndims");
        assert!(
            parse_idx(&idx(&[3], &[1, 2]), "x").is_err(),
            "short payload"
        );
        assert!(parse_idx(&idx(&[1], &[1, 2]), "x").is_err(), "long payload");
        assert!(
            parse_idx(&idx(&[u32::MAX, u32::MAX], &[]), "x").is_err(),
            "huge dims"
        );
        assert!(read_idx(Path::new("/nonexistent/idx")).is_err());
    }
}

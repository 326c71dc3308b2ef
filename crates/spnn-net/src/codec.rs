//! Explicit, bounded encoders and decoders for everything that crosses a party boundary.
//!
//! In the manner of rustls' `codec.rs`: every type has an encoder and a reader over a bounded
//! [`Reader`]; every length prefix has a maximum checked **before** anything is allocated;
//! decoding returns a typed [`CodecError`] and [`decode_exact`] rejects trailing bytes.
//! All integers are little-endian.
//!
//! [`Codec`] types compose (tuples, vectors); a [`Message`] is a codec with a kind code that
//! travels in the frame header, so a receiver can refuse a message of the wrong kind before it
//! decodes anything.

use spnn_crypto::{RingMatrix, SecretSeed};

use crate::error::CodecError;

/// Largest element count of one matrix or vector (2^28 elements: 2 GiB of `u64`; frames are
/// limited far below that by the transport's maximum frame size anyway).
pub const MAX_ELEMENTS: u64 = 1 << 28;

/// A cursor over a borrowed buffer that never reads past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::MissingData {
                what,
                need: n,
                have: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(what, N)?);
        Ok(a)
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u64` length prefix and checks it against `max` and against the bytes left
    /// (`elem_size` bytes per element), so a forged length cannot trigger a huge allocation.
    pub fn length(
        &mut self,
        what: &'static str,
        max: u64,
        elem_size: usize,
    ) -> Result<usize, CodecError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(CodecError::TooLong { what, len, max });
        }
        let bytes = len.saturating_mul(elem_size as u64);
        if bytes > self.remaining() as u64 {
            return Err(CodecError::MissingData {
                what,
                need: usize::try_from(bytes).unwrap_or(usize::MAX),
                have: self.remaining(),
            });
        }
        Ok(len as usize)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(CodecError::TrailingData(n)),
        }
    }
}

/// A type with an explicit wire encoding.
pub trait Codec: Sized {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError>;
}

/// A codec that is sent as a whole message; `KIND` travels in the frame header.
pub trait Message: Codec {
    /// The kind code; unique per message type within a protocol. Codes below `0x0100` are
    /// reserved for the types defined in this crate.
    const KIND: u16;
    /// A readable name for errors.
    const NAME: &'static str;
}

/// Decodes exactly one value from `bytes`: trailing bytes are an error.
pub fn decode_exact<T: Codec>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let v = T::read(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Encodes one value into a fresh buffer.
pub fn encode_to_vec<T: Codec>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

macro_rules! int_codec {
    ($($t:ty => $read:ident),*) => {$(
        impl Codec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                r.$read(stringify!($t))
            }
        }
    )*};
}
int_codec!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CodecError::Invalid {
                what: "bool",
                reason: format!("byte {b}"),
            }),
        }
    }
}

impl Codec for f32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    /// Refuses NaN and infinities: no protocol value may be non-finite.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = f32::from_le_bytes(r.array("f32")?);
        if !v.is_finite() {
            return Err(CodecError::Invalid {
                what: "f32",
                reason: format!("non-finite value {v}"),
            });
        }
        Ok(v)
    }
}

impl Codec for f64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    /// Refuses NaN and infinities.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = f64::from_le_bytes(r.array("f64")?);
        if !v.is_finite() {
            return Err(CodecError::Invalid {
                what: "f64",
                reason: format!("non-finite value {v}"),
            });
        }
        Ok(v)
    }
}

/// Longest string accepted on the wire.
pub const MAX_STRING: u64 = 4096;

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let n = r.length("string", MAX_STRING, 1)?;
        String::from_utf8(r.take("string", n)?.to_vec()).map_err(|e| CodecError::Invalid {
            what: "string",
            reason: e.to_string(),
        })
    }
}

impl<T: Codec> Codec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("option tag")? {
            0 => Ok(None),
            1 => Ok(Some(T::read(r)?)),
            t => Err(CodecError::Invalid {
                what: "option",
                reason: format!("tag {t}"),
            }),
        }
    }
}

impl<T: Codec> Codec for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for x in self {
            x.encode(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        // Every element takes at least one byte, which bounds the allocation by the buffer.
        let n = r.length("vector", MAX_ELEMENTS, 1)?;
        (0..n).map(|_| T::read(r)).collect()
    }
}

impl<A: Codec, B: Codec> Codec for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok((A::read(r)?, B::read(r)?))
    }
}

impl<A: Codec, B: Codec, C: Codec> Codec for (A, B, C) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok((A::read(r)?, B::read(r)?, C::read(r)?))
    }
}

/// Reads `(rows, cols)` and checks `rows·cols` against [`MAX_ELEMENTS`] and the bytes left.
fn read_shape(
    r: &mut Reader<'_>,
    what: &'static str,
    elem: usize,
) -> Result<(usize, usize), CodecError> {
    let rows = r.u32(what)? as u64;
    let cols = r.u32(what)? as u64;
    let n = rows * cols;
    if n > MAX_ELEMENTS {
        return Err(CodecError::TooLong {
            what,
            len: n,
            max: MAX_ELEMENTS,
        });
    }
    if n * elem as u64 > r.remaining() as u64 {
        return Err(CodecError::MissingData {
            what,
            need: (n * elem as u64) as usize,
            have: r.remaining(),
        });
    }
    Ok((rows as usize, cols as usize))
}

fn shape_u32(what: &'static str, rows: usize, cols: usize) -> (u32, u32) {
    // Matrices built in this process never exceed u32 dimensions; a larger one is a bug.
    let cast =
        |x: usize| u32::try_from(x).unwrap_or_else(|_| panic!("{what} dimension {x} exceeds u32"));
    (cast(rows), cast(cols))
}

impl Codec for RingMatrix {
    fn encode(&self, out: &mut Vec<u8>) {
        let (rows, cols) = shape_u32("ring matrix", self.rows(), self.cols());
        out.reserve(8 + 8 * self.as_slice().len());
        rows.encode(out);
        cols.encode(out);
        for x in self.as_slice() {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let (rows, cols) = read_shape(r, "ring matrix", 8)?;
        let bytes = r.take("ring matrix", rows * cols * 8)?;
        let data = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunk of 8")))
            .collect();
        RingMatrix::from_vec(rows, cols, data).map_err(|e| CodecError::Invalid {
            what: "ring matrix",
            reason: e.to_string(),
        })
    }
}

impl Message for RingMatrix {
    const KIND: u16 = 0x0001;
    const NAME: &'static str = "ring matrix";
}

/// A plaintext `f32` matrix, row-major: activations and gradients that are meant to be seen by
/// their receiver (the server's `Z`, split-learning baselines, the label holder's messages).
#[derive(Clone, Debug, PartialEq)]
pub struct FloatMatrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows · cols` finite values, row-major.
    pub data: Vec<f32>,
}

impl FloatMatrix {
    /// Wraps a buffer; fails unless it holds `rows · cols` finite values.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, CodecError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(CodecError::Invalid {
                what: "float matrix",
                reason: format!("{rows}x{cols} with {} values", data.len()),
            });
        }
        if let Some(v) = data.iter().find(|v| !v.is_finite()) {
            return Err(CodecError::Invalid {
                what: "float matrix",
                reason: format!("non-finite value {v}"),
            });
        }
        Ok(Self { rows, cols, data })
    }
}

impl Codec for FloatMatrix {
    fn encode(&self, out: &mut Vec<u8>) {
        let (rows, cols) = shape_u32("float matrix", self.rows, self.cols);
        rows.encode(out);
        cols.encode(out);
        for x in &self.data {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let (rows, cols) = read_shape(r, "float matrix", 4)?;
        let data = (0..rows * cols)
            .map(|_| f32::read(r))
            .collect::<Result<_, _>>()?;
        Ok(Self { rows, cols, data })
    }
}

impl Message for FloatMatrix {
    const KIND: u16 = 0x0002;
    const NAME: &'static str = "float matrix";
}

impl Codec for SecretSeed {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SecretSeed::from_bytes(r.array("seed")?))
    }
}

impl Message for SecretSeed {
    const KIND: u16 = 0x0003;
    const NAME: &'static str = "seed";
}

/// An opaque byte string with a length prefix (keys, serialized configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Codec for Blob {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.len() as u64).encode(out);
        out.extend_from_slice(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let n = r.length("blob", MAX_ELEMENTS, 1)?;
        Ok(Self(r.take("blob", n)?.to_vec()))
    }
}

impl Message for Blob {
    const KIND: u16 = 0x0004;
    const NAME: &'static str = "blob";
}

/// A list of sample ids (a batch): `u64`s with a length prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdList(pub Vec<u64>);

impl Codec for IdList {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let n = r.length("id list", MAX_ELEMENTS, 8)?;
        (0..n)
            .map(|_| r.u64("id"))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl Message for IdList {
    const KIND: u16 = 0x0005;
    const NAME: &'static str = "id list";
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(v: &T) {
        let bytes = encode_to_vec(v);
        assert_eq!(&decode_exact::<T>(&bytes).unwrap(), v);
        // Every strict prefix fails with MissingData, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                decode_exact::<T>(&bytes[..cut]).is_err(),
                "prefix {cut} of {}",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_exact::<T>(&longer).unwrap_err(),
            CodecError::TrailingData(1)
        );
    }

    proptest! {
        #[test]
        fn ring_matrices_round_trip(rows in 0usize..6, cols in 0usize..6, seed: u64) {
            let m = RingMatrix::random(rows, cols, &mut spnn_crypto::SecureRng::insecure_from_seed_for_tests(seed));
            round_trip(&m);
        }

        #[test]
        fn float_matrices_round_trip(data in proptest::collection::vec(-1e6f32..1e6, 0..12)) {
            let m = FloatMatrix::new(1, data.len(), data).unwrap();
            round_trip(&m);
        }

        #[test]
        fn composites_round_trip(ids in proptest::collection::vec(any::<u64>(), 0..10), blob in proptest::collection::vec(any::<u8>(), 0..40), flag: bool, x: u32) {
            round_trip(&IdList(ids.clone()));
            round_trip(&Blob(blob));
            round_trip(&(flag, x, ids));
            round_trip(&vec![(1u8, 2u16), (3, 4)]);
            round_trip(&(Some(x as f64 * 0.5), Option::<u8>::None, format!("s{x}")));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_exact::<RingMatrix>(&bytes);
            let _ = decode_exact::<FloatMatrix>(&bytes);
            let _ = decode_exact::<IdList>(&bytes);
            let _ = decode_exact::<Blob>(&bytes);
            let _ = decode_exact::<Vec<(bool, u64)>>(&bytes);
        }
    }

    #[test]
    fn seeds_round_trip() {
        let seed = spnn_crypto::SecureRng::from_os_entropy().secret_seed();
        let back: SecretSeed = decode_exact(&encode_to_vec(&seed)).unwrap();
        assert_eq!(back, seed);
    }

    #[test]
    fn forged_lengths_are_refused_before_allocating() {
        // A ring matrix claiming 2^32 x 2^32 elements in a 12-byte buffer.
        let mut bytes = vec![];
        u32::MAX.encode(&mut bytes);
        u32::MAX.encode(&mut bytes);
        bytes.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode_exact::<RingMatrix>(&bytes),
            Err(CodecError::TooLong { .. })
        ));
        // 1000 x 1000 claimed, 4 bytes present.
        let mut bytes = vec![];
        1000u32.encode(&mut bytes);
        1000u32.encode(&mut bytes);
        bytes.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode_exact::<RingMatrix>(&bytes),
            Err(CodecError::MissingData { .. })
        ));
        // A vector claiming u64::MAX elements.
        let bytes = encode_to_vec(&u64::MAX);
        assert!(matches!(
            decode_exact::<IdList>(&bytes),
            Err(CodecError::TooLong { .. })
        ));
    }

    #[test]
    fn non_finite_floats_and_bad_bools_are_refused() {
        let mut bytes = vec![];
        1u32.encode(&mut bytes);
        1u32.encode(&mut bytes);
        bytes.extend_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            decode_exact::<FloatMatrix>(&bytes),
            Err(CodecError::Invalid { .. })
        ));
        assert!(FloatMatrix::new(1, 1, vec![f32::INFINITY]).is_err());
        assert!(FloatMatrix::new(2, 1, vec![0.0]).is_err());
        assert!(decode_exact::<bool>(&[2]).is_err());
    }
}

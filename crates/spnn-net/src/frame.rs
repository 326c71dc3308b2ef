//! The frame: one message with its header.
//!
//! ```text
//! frame   = length:u32  header  payload        (length counts header + payload)
//! header  = version:u8  kind:u16  session:u64  step:u64          (19 bytes, little-endian)
//! ```
//!
//! The length prefix is read by the transport, which refuses anything above the configured
//! maximum before reading it. The header lets the receiver refuse a frame of an unknown
//! version, of another session, out of order, or of an unexpected kind — before the payload is
//! decoded ([`crate::Network::recv`]).

use crate::codec::{Codec, Message, Reader};
use crate::error::CodecError;

/// The wire protocol version of this build.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes of a header.
pub const HEADER_LEN: usize = 19;
/// Bytes of the length prefix in front of every frame on a stream transport.
pub const LENGTH_PREFIX: usize = 4;
/// Default maximum frame size: 256 MiB.
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Protocol version.
    pub version: u8,
    /// Message kind ([`Message::KIND`]).
    pub kind: u16,
    /// Session id.
    pub session: u64,
    /// Per-direction step counter.
    pub step: u64,
}

/// Encodes `msg` as a frame (without the transport's length prefix).
pub fn encode_frame<M: Message>(session: u64, step: u64, msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    PROTOCOL_VERSION.encode(&mut out);
    M::KIND.encode(&mut out);
    session.encode(&mut out);
    step.encode(&mut out);
    msg.encode(&mut out);
    out
}

/// Splits a frame into its header and payload.
pub fn decode_header(frame: &[u8]) -> Result<(FrameHeader, &[u8]), CodecError> {
    let mut r = Reader::new(frame);
    let header = FrameHeader {
        version: r.u8("frame version")?,
        kind: r.u16("frame kind")?,
        session: r.u64("frame session")?,
        step: r.u64("frame step")?,
    };
    Ok((header, &frame[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{IdList, decode_exact};

    #[test]
    fn frames_round_trip_and_short_headers_fail() {
        let f = encode_frame(0xfeed, 7, &IdList(vec![1, 2, 3]));
        let (h, payload) = decode_header(&f).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                version: PROTOCOL_VERSION,
                kind: IdList::KIND,
                session: 0xfeed,
                step: 7
            }
        );
        assert_eq!(
            decode_exact::<IdList>(payload).unwrap(),
            IdList(vec![1, 2, 3])
        );
        for cut in 0..HEADER_LEN {
            assert!(decode_header(&f[..cut]).is_err());
        }
    }
}

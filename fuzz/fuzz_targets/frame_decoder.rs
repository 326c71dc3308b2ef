//! Feeds arbitrary bytes to the frame header decoder and to every payload codec of spnn-net.
//! Nothing may panic, and whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spnn_crypto::{RingMatrix, SecretSeed};
use spnn_net::codec::{Codec, decode_exact, encode_to_vec};
use spnn_net::frame::decode_header;
use spnn_net::{Blob, FloatMatrix, IdList};

fn check<T: Codec>(bytes: &[u8]) {
    if let Ok(v) = decode_exact::<T>(bytes) {
        assert_eq!(encode_to_vec(&v), bytes, "decode/encode is not a bijection");
    }
}

fuzz_target!(|data: &[u8]| {
    let payload = match decode_header(data) {
        Ok((_, payload)) => payload,
        Err(_) => data,
    };
    check::<RingMatrix>(payload);
    check::<FloatMatrix>(payload);
    check::<IdList>(payload);
    check::<Blob>(payload);
    check::<SecretSeed>(payload);
    check::<Vec<(bool, u64)>>(payload);
});

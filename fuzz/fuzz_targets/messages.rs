//! Feeds arbitrary bytes to every message decoder of the SPNN protocols — commands, the
//! server's proposal, dealer material, openings, shares, seeds, head traffic, Paillier keys and
//! encrypted matrices — and to the checks a party runs next (configuration validation, the
//! default policy, key validation, ciphertext parsing against a key). The first byte picks the
//! message kind. Nothing may panic; whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, bytes)) = data.split_first() {
        spnn_burn::fuzzing::message(selector, bytes);
    }
});

//! Feeds arbitrary bytes to the checkpoint reader: as a sealed file (magic, version, length,
//! MAC), and as a payload sealed with the right key, so the holder checkpoint framing and the
//! SPNN-SS and SPNN-HE state parsers behind the MAC (Burn share records, integer shares) see
//! arbitrary input too. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spnn_burn::fuzzing::checkpoint(data, data);
});

//! SyncML XML decoder: no input may panic; whatever decodes must re-encode and decode again to
//! the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_syncml::{Encoding, Limits, decode_with, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode_with(data, Encoding::Xml, Limits::default()) {
        let again = encode(&decoded.message, Encoding::Xml);
        let back = decode_with(&again, Encoding::Xml, Limits::default())
            .expect("our own XML output must decode");
        assert_eq!(encode(&back.message, Encoding::Xml), again, "XML output must be stable");
    }
});

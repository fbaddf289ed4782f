//! SyncML WBXML decoder: no input may panic; whatever decodes must re-encode to bytes that decode
//! again and re-encode identically (stable output), and the size calculator must match the
//! encoder. (Model identity is a property test over generated messages; arbitrary input can
//! carry text the writer must move to OPAQUE, such as a NUL.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_syncml::{Encoding, Limits, decode_with, encode, encoded_size};

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode_with(data, Encoding::Wbxml, Limits::default()) {
        let again = encode(&decoded.message, Encoding::Wbxml);
        assert_eq!(again.len(), encoded_size(&decoded.message, Encoding::Wbxml));
        let back = decode_with(&again, Encoding::Wbxml, Limits::default())
            .expect("our own WBXML output must decode");
        assert_eq!(encode(&back.message, Encoding::Wbxml), again, "WBXML output must be stable");
    }
});

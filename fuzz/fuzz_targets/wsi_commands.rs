//! The WSI's command-list parser (`POST /operations` bodies): never panics on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = omnidm_api::parse_commands(data);
});

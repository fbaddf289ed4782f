//! The device-side engine fed arbitrary server responses after its package 1: it must never
//! panic, and whatever it sends next must decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_omadm::client::{ClientConfig, ClientSession, DeviceProfile, MemoryTree, SessionParams};
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let profile = DeviceProfile::default();
    let mut tree = MemoryTree::standard_device(&profile);
    let t0 = Instant::now();
    let mut s = ClientSession::new(ClientConfig::from_profile(&profile), SessionParams::first([3; 16]), t0);
    if s.poll_transmit(&mut tree, t0).is_none() {
        return;
    }
    let _ = s.handle_response(data, None, &mut tree, t0);
    while s.poll_event().is_some() {}
    if let Some(out) = s.poll_transmit(&mut tree, t0) {
        assert!(omnidm_syncml::decode(&out.body).is_ok(), "the client's own message must decode");
    }
    assert!(tree.check_consistency().is_ok(), "the tree stays consistent");
});
